package agentconfig

import (
	"strings"
	"testing"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestValidateFeatures(t *testing.T) {
	for _, tc := range []struct {
		f    mirrordv1alpha1.Features
		want string // "" for valid
	}{
		{mirrordv1alpha1.Features{FS: mirrordv1alpha1.FSFeature{ReadOnly: []string{"^/etc/"}}, Env: mirrordv1alpha1.EnvFeature{Exclude: []string{"SECRET_*"}}}, ""},
		{mirrordv1alpha1.Features{FS: mirrordv1alpha1.FSFeature{Local: []string{"/tmp/(x"}}}, `feature.fs.local[0]: Invalid value: "/tmp/(x"`},
		{mirrordv1alpha1.Features{FS: mirrordv1alpha1.FSFeature{NotFound: []string{"["}}}, `feature.fs.notFound[0]: Invalid value: "["`},
		{mirrordv1alpha1.Features{FS: mirrordv1alpha1.FSFeature{Mode: "rw"}}, `feature.fs.mode: Unsupported value: "rw"`},
		{mirrordv1alpha1.Features{Env: mirrordv1alpha1.EnvFeature{Include: []string{"A[*"}}}, `feature.env.include[0]: Invalid value: "A[*"`},
	} {
		err := ValidateFeatures(tc.f)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.f, err, tc.want)
		}
	}
}
