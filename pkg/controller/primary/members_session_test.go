package primary

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestSessionMembers(t *testing.T) {
	w, d := mirrordv1alpha1.ClusterRoleWorkload, mirrordv1alpha1.ClusterRoleDefault
	members := []*member{
		{name: "c1", roles: []mirrordv1alpha1.ClusterRole{w}},
		{name: "c2", roles: []mirrordv1alpha1.ClusterRole{w, d}},
		{name: "c3", roles: []mirrordv1alpha1.ClusterRole{w}},
	}
	for name, tc := range map[string]struct {
		target mirrordv1alpha1.Target
		want   []string
	}{
		"a workload is looked for everywhere": {mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: "api"}, []string{"c1", "c2", "c3"}},
		"targetless is the Default's alone":   {mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindTargetless}, []string{"c2"}},
	} {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, m := range sessionMembers(tc.target, members) {
				got = append(got, m.name)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("sessionMembers (-want,+got):\n%s", diff)
			}
		})
	}
}
