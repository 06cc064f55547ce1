package v1alpha1

import "testing"

func TestIncomingDescription(t *testing.T) {
	for want, in := range map[string]IncomingFeature{
		"mirror":                     {},
		"steal()":                    {Mode: IncomingModeSteal, HTTPFilter: &HTTPFilter{}},
		"steal(header=^X-User: me$)": {Mode: IncomingModeSteal, HTTPFilter: &HTTPFilter{Header: "^X-User: me$"}},
		"steal(method=POST,allOf[path=^/a,body=$.u~^me$],anyOf[headerJQ=.,header=x])": {Mode: IncomingModeSteal, HTTPFilter: &HTTPFilter{
			Method: "POST",
			AllOf:  []HTTPFilterTerm{{Path: "^/a"}, {Body: &JSONBodyFilter{Query: "$.u", Matches: "^me$"}}},
			AnyOf:  []HTTPFilterTerm{{HeaderJQ: "."}, {Header: "x"}},
		}},
	} {
		if got := in.Description(); got != want {
			t.Errorf("Description() = %q, want %q", got, want)
		}
	}
}
