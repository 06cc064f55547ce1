// Package fsmap decides mirrord's feature.fs.mapping: a path the command uses that matches a
// pattern is replaced (Go's Regexp.Expand, whose $1, $name and ${name} are those of Rust's
// Regex::replace that mirrord uses) and the result is read from the target. The sandbox
// mounts a file system at the fixed directory each pattern starts with; every path under it
// is mapped or else shown as the developer's own file.
package fsmap

import (
	"fmt"
	"maps"
	"path"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
)

// MaxRules bounds a config's mappings: each is a mount and a match per path looked up.
const MaxRules = 32

// Mapping is a config's feature.fs.mapping, ready to apply.
type Mapping struct {
	rules []rule
}

type rule struct {
	re   *regexp.Regexp
	repl string
	dir  string // where every path the pattern matches lies
}

// New checks each pattern (it must compile and start with ^ and a fixed absolute
// directory) and returns the mapping. Patterns are tried in sorted order: mirrord leaves the
// order of two patterns matching one path unspecified.
func New(patterns map[string]string) (*Mapping, error) {
	if len(patterns) > MaxRules {
		return nil, fmt.Errorf("%d mappings, at most %d", len(patterns), MaxRules)
	}
	m := &Mapping{}
	for _, p := range slices.Sorted(maps.Keys(patterns)) {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("%q: not a valid regular expression: %s", p, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		dir, err := MountDir(p)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", p, err)
		}
		repl := patterns[p]
		if !strings.HasPrefix(repl, "/") {
			return nil, fmt.Errorf("%q: the replacement %q is not an absolute path of the target", p, repl)
		}
		m.rules = append(m.rules, rule{re: re, repl: repl, dir: dir})
	}
	return m, nil
}

// Empty says whether there is nothing to map.
func (m *Mapping) Empty() bool { return m == nil || len(m.rules) == 0 }

// Map returns the target's path for local path p, and whether a pattern matched: the first
// matching pattern's first match is replaced, as Rust's Regex::replace does. A relative path
// is never mapped (mirrord does not either).
func (m *Mapping) Map(p string) (string, bool) {
	if m == nil || !strings.HasPrefix(p, "/") {
		return "", false
	}
	for _, r := range m.rules {
		loc := r.re.FindStringSubmatchIndex(p)
		if loc == nil {
			continue
		}
		out := r.re.ExpandString([]byte(p[:loc[0]]), r.repl, p, loc)
		out = append(out, p[loc[1]:]...)
		return path.Clean(string(out)), true
	}
	return "", false
}

// Dirs are the directories to mount for the mapping: each pattern's MountDir, without those
// inside another (one mount serves every pattern).
func (m *Mapping) Dirs() []string {
	var dirs []string
	for _, r := range m.rules {
		dirs = append(dirs, r.dir)
	}
	slices.Sort(dirs)
	var out []string
	for _, d := range slices.Compact(dirs) {
		if len(out) > 0 && within(d, out[len(out)-1]) {
			continue
		}
		out = append(out, d)
	}
	return out
}

// within says whether p is dir or under it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// MountDir is the deepest directory every path pattern matches lies in: the fixed text
// after its leading ^, up to its last slash, or all of it when the pattern is only that
// text (then /a/bc, which ^/a/b also matches, is not mapped). A pattern that does not start
// with ^ and an absolute path is refused: it could match anywhere.
func MountDir(pattern string) (string, error) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return "", err
	}
	re = re.Simplify()
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	if len(subs) == 0 || subs[0].Op != syntax.OpBeginText {
		return "", fmt.Errorf("start the pattern with ^ and an absolute directory (like ^/home/me/app/config): without ^ it matches anywhere in a path, and the command's files are mapped per directory")
	}
	var prefix strings.Builder
	rest := subs[1:]
	for len(rest) > 0 && rest[0].Op == syntax.OpLiteral && rest[0].Flags&syntax.FoldCase == 0 {
		prefix.WriteString(string(rest[0].Rune))
		rest = rest[1:]
	}
	if prefix.Len() == 0 && len(rest) > 0 && rest[0].Op == syntax.OpLiteral {
		return "", fmt.Errorf("a case-insensitive pattern has no fixed directory to mount: drop (?i)")
	}
	whole := len(rest) == 0 || (len(rest) == 1 && rest[0].Op == syntax.OpEndText)
	fixed := prefix.String()
	if !strings.HasPrefix(fixed, "/") {
		return "", fmt.Errorf("the pattern must go on with an absolute directory after ^ (like ^/home/me/app/config)")
	}
	dir := fixed
	if !whole {
		dir = fixed[:strings.LastIndex(fixed, "/")+1]
	}
	dir = path.Clean(dir)
	if dir == "/" {
		return "", fmt.Errorf("its fixed start %q is no directory below /: begin it with the directory its paths are in (like ^/home/me/app/config/)", fixed)
	}
	return dir, nil
}
