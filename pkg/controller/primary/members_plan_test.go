package primary

import (
	"maps"
	"slices"
	"testing"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestPlanMembers(t *testing.T) {
	w := []mirrordv1alpha1.ClusterRole{mirrordv1alpha1.ClusterRoleWorkload}
	wd := []mirrordv1alpha1.ClusterRole{mirrordv1alpha1.ClusterRoleWorkload, mirrordv1alpha1.ClusterRoleDefault}
	id := func(identity string, roles []mirrordv1alpha1.ClusterRole) memberID {
		return memberID{identity: identity, roles: roles}
	}
	for name, tc := range map[string]struct {
		running, registered map[string]memberID
		keep                []string
		changed             bool
	}{
		"nothing new": {
			running:    map[string]memberID{"self": id("self", wd), "c2": id("a", w)},
			registered: map[string]memberID{"self": id("self", wd), "c2": id("a", w)},
			keep:       []string{"c2", "self"},
		},
		"a member registered": {
			running:    map[string]memberID{"self": id("self", wd)},
			registered: map[string]memberID{"self": id("self", wd), "c2": id("a", w)},
			keep:       []string{"self"}, changed: true,
		},
		"a member removed": {
			running:    map[string]memberID{"self": id("self", wd), "c2": id("a", w)},
			registered: map[string]memberID{"self": id("self", wd)},
			keep:       []string{"self"}, changed: true,
		},
		"registered again at another server (or a new CA, or a new UID)": {
			running:    map[string]memberID{"c2": id("a", w)},
			registered: map[string]memberID{"c2": id("b", w)},
			changed:    true,
		},
		"a member's roles changed, its clients stay": {
			running:    map[string]memberID{"c2": id("a", w)},
			registered: map[string]memberID{"c2": id("a", wd)},
			keep:       []string{"c2"}, changed: true,
		},
		"one removed, another registered": {
			running:    map[string]memberID{"c2": id("a", w)},
			registered: map[string]memberID{"c3": id("c", w)},
			changed:    true,
		},
		"a member whose Secret is still missing": {
			running:    map[string]memberID{"c2": id("broken:no Secret", w)},
			registered: map[string]memberID{"c2": id("broken:no Secret", w)},
			keep:       []string{"c2"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			keep, changed := planMembers(tc.running, tc.registered)
			if got := slices.Sorted(maps.Keys(keep)); !slices.Equal(got, tc.keep) || changed != tc.changed {
				t.Errorf("keep %v, changed %v; want %v, %v", got, changed, tc.keep, tc.changed)
			}
		})
	}
}
