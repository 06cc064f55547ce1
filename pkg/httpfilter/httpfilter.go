// Package httpfilter decides which HTTP requests a steal takes, as mirrord's http_filter
// does: header and path regular expressions (fancy-regex, ignoring case), methods, jq over
// header lines, JSONPath over JSON bodies, and their all_of / any_of combinations.
//
// Everything a filter runs is bounded, because filters are written by session users and run
// in an agent shared by every session of a pod: regular expressions by pkg/regex's time and
// stack, jq by JQTimeout, bodies by MaxBody, JSONPath queries to one descendant segment
// (linear in the body), and all of one request's tests by MatchBudget. A test that runs out
// is no match: the request goes to the target.
package httpfilter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/itchyny/gojq"
	"github.com/theory/jsonpath"
	"github.com/theory/jsonpath/registry"
	"github.com/theory/jsonpath/spec"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/regex"
)

// Limits of one request's tests.
const (
	// MaxBody is the most of a body a body filter reads; a longer body is no match.
	MaxBody = 1 << 20
	// JQTimeout bounds one jq run over one header line.
	JQTimeout = 50 * time.Millisecond
	// MatchBudget bounds all the tests of one request together: header tests stop at the
	// first line after it (a request of many header lines, each near a regex's or jq's own
	// bound, cannot hold the agent for long).
	MatchBudget = 100 * time.Millisecond
)

// Filter is a compiled HTTPFilter. The zero of *Filter (nil) takes every request.
type Filter struct {
	all []test // each must match
	any []test // one must match, when there are any
	// NeedsBody: a test reads the body, so the caller reads it (at most MaxBody+1 bytes)
	// before Match.
	NeedsBody bool
}

// Request is what the tests look at: the request, and its body when NeedsBody (nil when it
// was longer than MaxBody).
type Request struct {
	*http.Request
	Body     []byte
	lines    []string
	deadline time.Time
}

// expired reports whether the request's MatchBudget is spent.
func (r *Request) expired() bool { return !r.deadline.IsZero() && time.Now().After(r.deadline) }

// headerLines are the request's headers as "Name: value" lines, Host first.
func (r *Request) headerLines() []string {
	if r.lines == nil {
		r.lines = append(r.lines, "Host: "+r.Host)
		for k, vs := range r.Header {
			for _, v := range vs {
				r.lines = append(r.lines, k+": "+v)
			}
		}
	}
	return r.lines
}

type test func(*Request) bool

// Error is an expression of a filter that does not compile: Field is its path below
// httpFilter (allOf[1].body.query), Value the expression, Reason what is wrong with it.
type Error struct {
	Field, Value, Reason string
}

func (e *Error) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("feature.network.incoming.httpFilter.%s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("feature.network.incoming.httpFilter.%s: %q: %s", e.Field, e.Value, e.Reason)
}

// Errors are the *Errors of Compile's error, one for each expression that does not compile.
func Errors(err error) []*Error {
	var out []*Error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, Errors(e)...)
		}
	} else if fe := (*Error)(nil); errors.As(err, &fe) {
		out = append(out, fe)
	}
	return out
}

// Compile compiles f; nil when it filters nothing (steal whole ports). Required headers alone
// (a policy's, on a session that gave no filter) still filter: they are never dropped. The
// error joins an *Error for each expression that does not compile.
func Compile(f *mirrordv1alpha1.HTTPFilter) (*Filter, error) {
	if !f.Filters() {
		return nil, nil
	}
	c := &compiler{}
	out := &Filter{}
	out.all = c.terms("", f.Top())
	for i, t := range f.AllOf {
		out.all = append(out.all, c.terms(fmt.Sprintf("allOf[%d].", i), t)...)
	}
	for i, t := range f.AnyOf {
		tests := c.terms(fmt.Sprintf("anyOf[%d].", i), t)
		if t.Empty() || len(tests) > 1 {
			c.fail(fmt.Sprintf("anyOf[%d]", i), "", "each term sets exactly one of header, headerJQ, path, method, body")
		}
		if len(tests) == 1 {
			out.any = append(out.any, tests[0])
		}
	}
	for i, expr := range f.RequiredHeaders {
		if re := c.regex(fmt.Sprintf("requiredHeaders[%d]", i), expr, true); re != nil {
			out.all = append(out.all, headerTest(re))
		}
	}
	out.NeedsBody = c.needsBody
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	return out, nil
}

// compiler compiles a filter's expressions, keeping an *Error for each that does not.
type compiler struct {
	errs      []error
	needsBody bool
}

func (c *compiler) fail(field, value, reason string) {
	c.errs = append(c.errs, &Error{Field: field, Value: value, Reason: reason})
}

// regex compiles expr, ignoring case when foldCase; nil when it does not compile.
func (c *compiler) regex(field, expr string, foldCase bool) regex.Regexp {
	// The expression alone first: its error is about what the user wrote.
	re, err := regex.Compile(expr)
	if err == nil && foldCase {
		re, err = regex.Compile("(?i)" + expr)
	}
	if err != nil {
		c.fail(field, expr, "not a valid regular expression: "+err.Error())
		return nil
	}
	return re
}

// terms compiles each set field of t into a test.
func (c *compiler) terms(prefix string, t mirrordv1alpha1.HTTPFilterTerm) []test {
	var tests []test
	if t.Header != "" {
		if re := c.regex(prefix+"header", t.Header, true); re != nil {
			tests = append(tests, headerTest(re))
		}
	}
	if t.HeaderJQ != "" {
		if code, err := compileJQ(t.HeaderJQ); err != nil {
			c.fail(prefix+"headerJQ", t.HeaderJQ, "not a valid jq program: "+err.Error())
		} else {
			tests = append(tests, func(r *Request) bool {
				for _, l := range r.headerLines() {
					if r.expired() {
						return false
					}
					if jqTrue(code, l, r.deadline) {
						return true
					}
				}
				return false
			})
		}
	}
	if t.Path != "" {
		if re := c.regex(prefix+"path", t.Path, true); re != nil {
			tests = append(tests, func(r *Request) bool {
				return re.MatchString(r.URL.Path) || (r.URL.RawQuery != "" && re.MatchString(r.URL.Path+"?"+r.URL.RawQuery))
			})
		}
	}
	if t.Method != "" {
		// mirrord compares a method name, ignoring case; a regex of names works too (GET|POST).
		if c.regex(prefix+"method", t.Method, false) != nil {
			if whole := c.regex(prefix+"method", "^(?:"+t.Method+")$", true); whole != nil {
				tests = append(tests, func(r *Request) bool { return whole.MatchString(r.Method) })
			}
		}
	}
	if b := t.Body; b != nil {
		query, err := parser.Parse(b.Query)
		switch {
		case err != nil:
			c.fail(prefix+"body.query", b.Query, "not a valid JSONPath (RFC 9535) query: "+err.Error())
		case strings.Count(b.Query, "..") > 1:
			// Each nested descendant segment multiplies the work by the body's size.
			err = errors.New("nested descendants")
			c.fail(prefix+"body.query", b.Query, "more than one descendant segment (..) is refused here: such a query takes time quadratic in the body; keep one")
		}
		re := c.regex(prefix+"body.matches", b.Matches, false)
		if err == nil && re != nil {
			c.needsBody = true
			tests = append(tests, func(r *Request) bool { return bodyMatches(query, re, r.Body) })
		}
	}
	return tests
}

// Match reports whether the request is the session's. A nil filter takes every request.
func (f *Filter) Match(r *Request) bool {
	if f == nil {
		return true
	}
	if r.deadline.IsZero() {
		r.deadline = time.Now().Add(MatchBudget)
	}
	for _, t := range f.all {
		if !t(r) {
			return false
		}
	}
	if len(f.any) == 0 {
		return true
	}
	for _, t := range f.any {
		if t(r) {
			return true
		}
	}
	return false
}

func headerTest(re regex.Regexp) test {
	return func(r *Request) bool {
		for _, l := range r.headerLines() {
			if r.expired() {
				return false
			}
			if re.MatchString(l) {
				return true
			}
		}
		return false
	}
}

// compileJQ compiles a jq program without access to the agent's environment or files (gojq
// gives neither unless asked).
func compileJQ(src string) (*gojq.Code, error) {
	q, err := gojq.Parse(src)
	if err != nil {
		return nil, err
	}
	return gojq.Compile(q)
}

// jqTrue reports whether code yields true for input within JQTimeout (and before deadline,
// when there is one).
func jqTrue(code *gojq.Code, input string, deadline time.Time) bool {
	end := time.Now().Add(JQTimeout)
	if !deadline.IsZero() && deadline.Before(end) {
		end = deadline
	}
	ctx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()
	it := code.RunWithContext(ctx, input)
	for {
		v, ok := it.Next()
		if !ok {
			return false
		}
		if b, isBool := v.(bool); isBool && b {
			return true
		}
		if _, isErr := v.(error); isErr {
			return false
		}
	}
}

// parser reads JSONPath queries with RFC 9535's functions and mirrord's typeof.
var parser = jsonpath.NewParser(jsonpath.WithRegistry(withTypeof()))

func withTypeof() *registry.Registry {
	reg := registry.New()
	err := reg.Register("typeof", spec.FuncValue, func(args []spec.FuncExprArg) error {
		if len(args) != 1 || !args[0].ConvertsTo(spec.FuncNodes) {
			return errors.New("typeof takes one query, such as typeof(@)")
		}
		return nil
	}, func(args []spec.PathValue) spec.PathValue {
		var kind string
		for i, n := range spec.NodesFrom(args[0]) {
			k := typeName(n)
			if i > 0 && k != kind {
				return nil // nothing: the nodes differ
			}
			kind = k
		}
		if kind == "" {
			return nil
		}
		return spec.Value(kind)
	})
	if err != nil {
		panic(err)
	}
	return reg
}

// typeName is typeof's name for a decoded JSON value.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case json.Number, float64, int, int64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	default:
		return "object"
	}
}

// bodyMatches reports whether body is JSON and query finds a value re matches (strings as
// they are, other values as their JSON text).
func bodyMatches(query *jsonpath.Path, re regex.Regexp, body []byte) bool {
	if body == nil {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if dec.Decode(&doc) != nil {
		return false
	}
	for v := range query.Select(doc).All() {
		s, isString := v.(string)
		if !isString {
			b, err := json.Marshal(v)
			if err != nil {
				continue
			}
			s = string(b)
		}
		if re.MatchString(s) {
			return true
		}
	}
	return false
}
