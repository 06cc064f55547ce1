package relayserver

import (
	"testing"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestRouteClusters(t *testing.T) {
	w, d := mirrordv1alpha1.ClusterRoleWorkload, mirrordv1alpha1.ClusterRoleDefault
	cluster := func(name string, agents int32, roles ...mirrordv1alpha1.ClusterRole) mirrordv1alpha1.SessionClusterStatus {
		return mirrordv1alpha1.SessionClusterStatus{Name: name, Roles: roles, Agents: agents}
	}
	for name, tc := range map[string]struct {
		clusters []mirrordv1alpha1.SessionClusterStatus
		stateful string // "" none
		incoming []string
	}{
		"topology A": {
			clusters: []mirrordv1alpha1.SessionClusterStatus{cluster("c1", 1, w, d), cluster("c2", 1, w), cluster("c3", 2, w)},
			stateful: "c1", incoming: []string{"c1", "c2", "c3"},
		},
		"a Default cluster without the target's pods": {
			clusters: []mirrordv1alpha1.SessionClusterStatus{cluster("c1", 0, d), cluster("c2", 1, w)},
			stateful: "c1", incoming: []string{"c2"},
		},
		"a Workload cluster where the target has no pods": {
			clusters: []mirrordv1alpha1.SessionClusterStatus{cluster("c1", 1, w, d), cluster("c2", 0, w)},
			stateful: "c1", incoming: []string{"c1"},
		},
		"no Default cluster (yet)": {
			clusters: []mirrordv1alpha1.SessionClusterStatus{cluster("c2", 1, w)},
			incoming: []string{"c2"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			c, ok := statefulCluster(tc.clusters)
			if ok != (tc.stateful != "") || c.Name != tc.stateful {
				t.Errorf("stateful: %q (%v), want %q", c.Name, ok, tc.stateful)
			}
			var got []string
			for _, c := range incomingClusters(tc.clusters) {
				got = append(got, c.Name)
			}
			if len(got) != len(tc.incoming) {
				t.Fatalf("incoming %v, want %v", got, tc.incoming)
			}
			for i := range got {
				if got[i] != tc.incoming[i] {
					t.Errorf("incoming %v, want %v", got, tc.incoming)
				}
			}
		})
	}
}
