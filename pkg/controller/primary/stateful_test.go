package primary

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestNotInDefault(t *testing.T) {
	trafficOnly := mirrordv1alpha1.Features{
		Env:     mirrordv1alpha1.EnvFeature{Disabled: true},
		FS:      mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeLocal},
		Network: mirrordv1alpha1.NetworkFeature{DNS: mirrordv1alpha1.DNSFeature{Disabled: true}, Outgoing: mirrordv1alpha1.OutgoingFeature{TCP: ptr.To(false), UDP: ptr.To(false)}},
	}
	withFiles := trafficOnly
	withFiles.FS.ReadOnly = []string{"^/etc/app"}
	for name, tc := range map[string]struct {
		f    mirrordv1alpha1.Features
		want string // "" the session goes on
	}{
		"everything (the defaults)": {mirrordv1alpha1.Features{}, "which alone answers for its environment, files, DNS, outgoing traffic: deploy it there, or take only its traffic (--no-env --fs-mode local --no-dns --no-outgoing)"},
		"only the target's traffic": {trafficOnly, ""},
		"traffic and a remote file": {withFiles, "answers for its files: deploy it there, or take only its traffic (--fs-mode local)"},
	} {
		t.Run(name, func(t *testing.T) {
			got := notInDefault("deployment/api", "c2", 1, tc.f)
			if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
				t.Errorf("notInDefault = %q, want %q", got, tc.want)
			}
		})
	}
}
