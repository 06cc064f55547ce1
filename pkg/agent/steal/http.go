package steal

import (
	"fmt"
	"net/http"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/regex"
)

// Filter matches HTTP requests: every set expression must match (header and each required
// header: one "Name: value" line; path: the request path; method: the method). Expressions
// are mirrord's (pkg/regex: look-around included, bounded).
type Filter struct {
	header, path, method regex.Regexp
	required             []regex.Regexp
}

// CompileFilter compiles a session's httpFilter; an invalid expression is an error naming
// its key. A nil or empty filter is nil: steal whole ports. Required headers alone (a
// policy's, on a session that gave no filter) still filter: they are never dropped.
func CompileFilter(f *mirrordv1alpha1.HTTPFilter) (*Filter, error) {
	if f == nil || (f.Header == "" && f.Path == "" && f.Method == "" && len(f.RequiredHeaders) == 0) {
		return nil, nil
	}
	var out Filter
	for _, e := range []struct {
		key, expr string
		into      *regex.Regexp
	}{{"header", f.Header, &out.header}, {"path", f.Path, &out.path}, {"method", f.Method, &out.method}} {
		if e.expr == "" {
			continue
		}
		re, err := regex.Compile(e.expr)
		if err != nil {
			return nil, fmt.Errorf("feature.network.incoming.httpFilter.%s: invalid regular expression %q: %w", e.key, e.expr, err)
		}
		*e.into = re
	}
	for i, expr := range f.RequiredHeaders {
		re, err := regex.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("feature.network.incoming.httpFilter.requiredHeaders[%d]: invalid regular expression %q: %w", i, expr, err)
		}
		out.required = append(out.required, re)
	}
	return &out, nil
}

// Match reports whether r is the session's.
func (f *Filter) Match(r *http.Request) bool {
	if f.method != nil && !f.method.MatchString(r.Method) {
		return false
	}
	if f.path != nil && !f.path.MatchString(r.URL.Path) {
		return false
	}
	if f.header == nil && len(f.required) == 0 {
		return true
	}
	lines := []string{"Host: " + r.Host}
	for k, vs := range r.Header {
		for _, v := range vs {
			lines = append(lines, k+": "+v)
		}
	}
	anyLine := func(re regex.Regexp) bool {
		for _, l := range lines {
			if re.MatchString(l) {
				return true
			}
		}
		return false
	}
	if f.header != nil && !anyLine(f.header) {
		return false
	}
	for _, re := range f.required {
		if !anyLine(re) {
			return false
		}
	}
	return true
}

// RoundTripFunc answers a request the filter gave to the session.
type RoundTripFunc func(*http.Request) (*http.Response, error)

// RoundTrip makes a RoundTripFunc an http.RoundTripper.
func (f RoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
