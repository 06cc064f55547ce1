package config

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// node is a value of the parsed document and the key path that leads to it, so that every
// error can name the key.
type node struct {
	path string
	v    any
}

func (n node) child(key string) node {
	p := key
	if n.path != "" {
		p = n.path + "." + key
	}
	return node{path: p}
}

func (n node) errorf(format string, args ...any) error {
	return &Error{Key: n.path, Msg: fmt.Sprintf(format, args...)}
}

// describe names the JSON type of v, for "expected a string, got a list".
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "nothing (null)"
	case bool:
		return fmt.Sprintf("a boolean (%v)", v)
	case string:
		return fmt.Sprintf("a string (%q)", v)
	case json.Number, int64, float64:
		return fmt.Sprintf("a number (%v)", v)
	case []any:
		return "a list"
	case map[string]any:
		return "a table of keys"
	}
	return fmt.Sprintf("%T", v)
}

// object returns the keys of n, which must be an object with no key outside allowed.
func (n node) object(allowed ...string) (map[string]node, error) {
	m, ok := n.v.(map[string]any)
	if !ok {
		return nil, n.errorf("expected a table of keys (%s), got %s", strings.Join(allowed, ", "), describe(n.v))
	}
	out := make(map[string]node, len(m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c := n.child(k)
		if !contains(allowed, k) {
			if why, ok := ignored[c.path]; ok {
				// Read but not applied: said in a warning by the caller.
				out[k] = node{path: c.path, v: ignoredValue{why}}
				continue
			}
			if why, ok := unsupported[c.path]; ok {
				return nil, c.errorf("%s", why)
			}
			msg := "unknown key"
			if s := closest(k, allowed); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			return nil, c.errorf("%s (the keys here are: %s)", msg, strings.Join(allowed, ", "))
		}
		c.v = m[k]
		out[k] = c
	}
	return out, nil
}

// ignoredValue marks a key that is read but not applied.
type ignoredValue struct{ why string }

func (n node) str() (string, error) {
	s, ok := n.v.(string)
	if !ok {
		return "", n.errorf("expected a string, got %s", describe(n.v))
	}
	return s, nil
}

func (n node) boolean() (bool, error) {
	b, ok := n.v.(bool)
	if !ok {
		return false, n.errorf("expected true or false, got %s", describe(n.v))
	}
	return b, nil
}

// integer accepts JSON numbers (YAML becomes JSON) and TOML integers.
func (n node) integer(min, max int64) (int64, error) {
	var i int64
	switch v := n.v.(type) {
	case json.Number:
		x, err := v.Int64()
		if err != nil {
			return 0, n.errorf("expected a whole number, got %s", v)
		}
		i = x
	case int64:
		i = v
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return 0, n.errorf("expected a whole number, got %v", v)
		}
		i = int64(v)
	default:
		return 0, n.errorf("expected a number, got %s", describe(n.v))
	}
	if i < min || i > max {
		return 0, n.errorf("%d is out of range: use %d to %d", i, min, max)
	}
	return i, nil
}

// port is a whole number; whether it is a port (1 to 65535) the features' validation says.
func (n node) port() (int32, error) {
	p, err := n.integer(math.MinInt32, math.MaxInt32)
	return int32(p), err
}

func (n node) list() ([]node, error) {
	l, ok := n.v.([]any)
	if !ok {
		return nil, n.errorf("expected a list, got %s", describe(n.v))
	}
	out := make([]node, len(l))
	for i, v := range l {
		out[i] = node{path: fmt.Sprintf("%s[%d]", n.path, i), v: v}
	}
	return out, nil
}

// strings accepts a list of strings or one string, which sep (if any) splits, as mirrord
// accepts "A;B" for feature.env.include.
func (n node) strings(sep string) ([]string, error) {
	if s, ok := n.v.(string); ok {
		if sep == "" {
			return []string{s}, nil
		}
		var out []string
		for _, p := range strings.Split(s, sep) {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out, nil
	}
	l, err := n.list()
	if err != nil {
		return nil, n.errorf("expected a string or a list of strings, got %s", describe(n.v))
	}
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, err := e.str()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (n node) ports() ([]int32, error) {
	if _, ok := n.v.([]any); !ok {
		p, err := n.port()
		if err != nil {
			return nil, err
		}
		return []int32{p}, nil
	}
	l, _ := n.list()
	out := make([]int32, 0, len(l))
	for _, e := range l {
		p, err := e.port()
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// oneOf returns n's string if it is one of values.
func (n node) oneOf(values ...string) (string, error) {
	s, err := n.str()
	if err != nil {
		return "", n.errorf("expected one of %s, got %s", strings.Join(values, ", "), describe(n.v))
	}
	if !contains(values, strings.ToLower(s)) {
		return "", n.errorf("%q is not one of %s", s, strings.Join(values, ", "))
	}
	return strings.ToLower(s), nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// closest is the allowed key nearest to k by edit distance, if near enough to be a typo.
func closest(k string, allowed []string) string {
	best, bestD := "", 3
	for _, a := range allowed {
		if d := distance(strings.ToLower(k), a); d < bestD {
			best, bestD = a, d
		}
	}
	return best
}

func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
