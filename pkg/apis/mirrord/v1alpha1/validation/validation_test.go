package validation

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestValidateFeatures(t *testing.T) {
	steal := func(f mirrordv1alpha1.HTTPFilter) mirrordv1alpha1.Features {
		return mirrordv1alpha1.Features{Network: mirrordv1alpha1.NetworkFeature{Incoming: mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeSteal, HTTPFilter: &f}}}
	}
	incoming := func(in mirrordv1alpha1.IncomingFeature) mirrordv1alpha1.Features {
		return mirrordv1alpha1.Features{Network: mirrordv1alpha1.NetworkFeature{Incoming: in}}
	}
	for name, tc := range map[string]struct {
		f    mirrordv1alpha1.Features
		want []string // one per error, in order; none: valid
	}{
		"the defaults": {},
		"everything set, all valid": {f: mirrordv1alpha1.Features{
			Env: mirrordv1alpha1.EnvFeature{Include: []string{"DB_*"}, Exclude: []string{"*_SECRET"}},
			FS:  mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeWrite, ReadOnly: []string{"^/etc/app"}, Local: []string{"^/tmp"}},
			Network: mirrordv1alpha1.NetworkFeature{Incoming: mirrordv1alpha1.IncomingFeature{
				Mode: mirrordv1alpha1.IncomingModeSteal, Ports: []int32{80, 8080}, PortMapping: []mirrordv1alpha1.PortMapping{{Remote: 80, Local: 8080}},
				HTTPFilter: &mirrordv1alpha1.HTTPFilter{Header: "^X-User: me$", Path: "^/api", Method: "GET|POST", RequiredHeaders: []string{"^X-Team: a$"}}}},
		}},
		"an env pattern": {f: mirrordv1alpha1.Features{Env: mirrordv1alpha1.EnvFeature{Exclude: []string{"OK_*", "[bad"}}},
			want: []string{`feature.env.exclude[1]: Invalid value: "[bad": not a valid pattern`}},
		"env mapping and unset": {f: mirrordv1alpha1.Features{Env: mirrordv1alpha1.EnvFeature{Mapping: map[string]string{".+_OK": "1", "(": "x"}, Unset: []string{"A", "B=C"}}},
			want: []string{`feature.env.mapping[(]: Invalid value: "(": not a valid regular expression`, `feature.env.unset[1]: Invalid value: "B=C": not a variable name`}},
		"an fs mode": {f: mirrordv1alpha1.Features{FS: mirrordv1alpha1.FSFeature{Mode: "rw"}},
			want: []string{`feature.fs.mode: Unsupported value: "rw": supported values: "local", "read", "write"`}},
		"fs regexes, every bad one": {f: mirrordv1alpha1.Features{FS: mirrordv1alpha1.FSFeature{ReadWrite: []string{"("}, PolicyLocal: []string{"["}}},
			want: []string{`feature.fs.readWrite[0]: Invalid value: "("`, `feature.fs.policyLocal[0]: Invalid value: "["`}},
		"an incoming mode": {f: incoming(mirrordv1alpha1.IncomingFeature{Mode: "copy"}),
			want: []string{`feature.network.incoming.mode: Unsupported value: "copy"`}},
		"ports out of range": {f: incoming(mirrordv1alpha1.IncomingFeature{Ports: []int32{0}, IgnorePorts: []int32{70000}, PortMapping: []mirrordv1alpha1.PortMapping{{Remote: 80, Local: -1}}}),
			want: []string{"feature.network.incoming.ports[0]: Invalid value: 0", "feature.network.incoming.ignorePorts[0]: Invalid value: 70000", "feature.network.incoming.portMapping[0].local: Invalid value: -1"}},
		"an HTTP filter": {f: steal(mirrordv1alpha1.HTTPFilter{Header: "(", RequiredHeaders: []string{"ok", "*x"}}),
			want: []string{`feature.network.incoming.httpFilter.header: Invalid value: "("`, `feature.network.incoming.httpFilter.requiredHeaders[1]: Invalid value: "*x"`}},
		"outgoing local and remote": {f: mirrordv1alpha1.Features{Network: mirrordv1alpha1.NetworkFeature{Outgoing: mirrordv1alpha1.OutgoingFeature{
			Filter: &mirrordv1alpha1.OutgoingFilter{Local: []string{"db:5432"}, Remote: []string{"api:80"}}}}},
			want: []string{"feature.network.outgoing.filter: Invalid value: \"local and remote\""}},
	} {
		t.Run(name, func(t *testing.T) {
			errs := ValidateFeatures(&tc.f, field.NewPath("feature"))
			if len(errs) != len(tc.want) {
				t.Fatalf("errors %v, want %d: %q", errs, len(tc.want), tc.want)
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tc.want[i]) {
					t.Errorf("error %d: %q, want %q", i, e.Error(), tc.want[i])
				}
			}
		})
	}
}
