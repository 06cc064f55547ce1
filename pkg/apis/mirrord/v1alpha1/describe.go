package v1alpha1

import (
	"fmt"
	"sort"
	"strings"
)

// Description is how tables show incoming traffic handling: mirror, steal, off, or steal
// with its filter, steal(path=^/api).
func (in IncomingFeature) Description() string {
	mode := string(in.Mode)
	if mode == "" {
		mode = string(IncomingModeMirror)
	}
	if f := in.HTTPFilter; f != nil && in.Mode == IncomingModeSteal {
		parts := f.Top().describe()
		for _, l := range []struct {
			name  string
			terms []HTTPFilterTerm
		}{{"allOf", f.AllOf}, {"anyOf", f.AnyOf}} {
			if len(l.terms) > 0 {
				var ts []string
				for _, t := range l.terms {
					ts = append(ts, t.describe()...)
				}
				parts = append(parts, l.name+"["+strings.Join(ts, ",")+"]")
			}
		}
		mode += "(" + strings.Join(parts, ",") + ")"
	}
	return mode
}

// describe is a term's set fields as key=value.
func (t HTTPFilterTerm) describe() []string {
	var parts []string
	for _, kv := range [][2]string{{"header", t.Header}, {"headerJQ", t.HeaderJQ}, {"path", t.Path}, {"method", t.Method}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if t.Body != nil {
		parts = append(parts, "body="+t.Body.Query+"~"+t.Body.Matches)
	}
	return parts
}

// ClustersDescription lists a session's clusters with the initials of their roles:
// c2(D,W),c3(W); <none> before any.
func ClustersDescription(clusters []SessionClusterStatus) string {
	if len(clusters) == 0 {
		return "<none>"
	}
	parts := make([]string, 0, len(clusters))
	for _, c := range clusters {
		var roles []string
		for _, r := range c.Roles {
			roles = append(roles, string(r)[:1])
		}
		sort.Strings(roles)
		parts = append(parts, fmt.Sprintf("%s(%s)", c.Name, strings.Join(roles, ",")))
	}
	return strings.Join(parts, ",")
}
