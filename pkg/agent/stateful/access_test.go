package stateful

import (
	"testing"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// TestAccess: a session's own settings decide among what policies leave; they never widen a
// policy's rule.
func TestAccess(t *testing.T) {
	for name, tc := range map[string]struct {
		fs   mirrordv1alpha1.FSFeature
		path string
		want Access
	}{
		"mode read":                                    {fs: mirrordv1alpha1.FSFeature{Mode: "read"}, path: "/etc/app", want: AccessRead},
		"mode local":                                   {fs: mirrordv1alpha1.FSFeature{Mode: "local"}, path: "/etc/app", want: AccessLocal},
		"the session's readWrite over its mode":        {fs: mirrordv1alpha1.FSFeature{Mode: "read", ReadWrite: []string{"^/data/"}}, path: "/data/x", want: AccessWrite},
		"the session's readOnly over local mode":       {fs: mirrordv1alpha1.FSFeature{Mode: "local", ReadOnly: []string{".*"}}, path: "/etc/app", want: AccessRead},
		"a policy's readOnly over the session's write": {fs: mirrordv1alpha1.FSFeature{Mode: "write", ReadWrite: []string{".*"}, PolicyReadOnly: []string{"^/etc/"}}, path: "/etc/app", want: AccessRead},
		"a policy's readOnly leaves other paths":       {fs: mirrordv1alpha1.FSFeature{Mode: "write", PolicyReadOnly: []string{"^/etc/"}}, path: "/data/x", want: AccessWrite},
		"a policy's readOnly does not add reading":     {fs: mirrordv1alpha1.FSFeature{Mode: "local", PolicyReadOnly: []string{"^/etc/"}}, path: "/etc/app", want: AccessLocal},
		"a policy's local over the session's readOnly": {fs: mirrordv1alpha1.FSFeature{Mode: "read", ReadOnly: []string{".*"}, PolicyLocal: []string{"^/secrets/"}}, path: "/secrets/db", want: AccessLocal},
		"a policy's local over the session's write":    {fs: mirrordv1alpha1.FSFeature{Mode: "write", ReadWrite: []string{".*"}, PolicyLocal: []string{"^/secrets/"}}, path: "/secrets/db", want: AccessLocal},
		"notFound over everything":                     {fs: mirrordv1alpha1.FSFeature{Mode: "write", ReadWrite: []string{".*"}, NotFound: []string{"^/secrets/"}}, path: "/secrets/db", want: AccessNotFound},
	} {
		t.Run(name, func(t *testing.T) {
			fsys, err := newFS(tc.fs)
			if err != nil {
				t.Fatal(err)
			}
			if got := fsys.Access(tc.path); got != tc.want {
				t.Errorf("Access(%s) = %v, want %v", tc.path, got, tc.want)
			}
		})
	}
}
