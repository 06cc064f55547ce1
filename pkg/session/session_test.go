package session

import (
	"testing"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestUsable(t *testing.T) {
	const (
		ready    = mirrordv1alpha1.SessionReady
		pending  = mirrordv1alpha1.SessionPending
		degraded = mirrordv1alpha1.SessionDegraded
	)
	w := []mirrordv1alpha1.ClusterRole{mirrordv1alpha1.ClusterRoleWorkload}
	dw := []mirrordv1alpha1.ClusterRole{mirrordv1alpha1.ClusterRoleWorkload, mirrordv1alpha1.ClusterRoleDefault}
	cluster := func(name string, phase mirrordv1alpha1.SessionPhase, roles []mirrordv1alpha1.ClusterRole) mirrordv1alpha1.SessionClusterStatus {
		return mirrordv1alpha1.SessionClusterStatus{Name: name, Phase: phase, Roles: roles, Error: "why " + name}
	}
	for name, tc := range map[string]struct {
		clusters []mirrordv1alpha1.SessionClusterStatus
		want     bool
		missing  string
	}{
		"a Workload away":            {[]mirrordv1alpha1.SessionClusterStatus{cluster("c2", ready, dw), cluster("c3", degraded, w)}, true, "c3 (why c3)"},
		"the Default away":           {[]mirrordv1alpha1.SessionClusterStatus{cluster("c2", degraded, dw), cluster("c3", ready, w)}, false, "c2 (why c2)"},
		"a cluster still starting":   {[]mirrordv1alpha1.SessionClusterStatus{cluster("c2", pending, dw), cluster("c3", degraded, w)}, false, "c2 (why c2); c3 (why c3)"},
		"a cluster not reported yet": {[]mirrordv1alpha1.SessionClusterStatus{cluster("c2", ready, dw), cluster("c3", "", w)}, false, "c3 (why c3)"},
		"nothing ready":              {[]mirrordv1alpha1.SessionClusterStatus{cluster("c3", degraded, w)}, false, "c3 (why c3)"},
	} {
		s := &mirrordv1alpha1.MirrordSession{Status: mirrordv1alpha1.MirrordSessionStatus{Phase: degraded, Clusters: tc.clusters}}
		if got := Usable(s); got != tc.want {
			t.Errorf("%s: Usable = %v, want %v", name, got, tc.want)
		}
		if got := Missing(s); got != tc.missing {
			t.Errorf("%s: Missing = %q, want %q", name, got, tc.missing)
		}
	}
}
