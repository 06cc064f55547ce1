package primary

import (
	"slices"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// memberID is what decides whether a member's running clients and informers can stay when
// the registered members are read again: what they were built from, and its roles.
type memberID struct {
	identity string
	roles    []mirrordv1alpha1.ClusterRole
}

func identities(ms map[string]*member) map[string]memberID {
	out := make(map[string]memberID, len(ms))
	for name, m := range ms {
		out[name] = memberID{identity: m.identity, roles: m.roles}
	}
	return out
}

// planMembers decides, from the members running now and the ones registered now, which
// running ones stay (keep: built from the same cluster, Secret CA and UID; the rest stop, and
// the registered ones not kept start), and whether sessions must be reconciled again
// (changed: a member came, went, was replaced or changed roles).
func planMembers(running, registered map[string]memberID) (keep map[string]bool, changed bool) {
	keep = map[string]bool{}
	changed = len(running) != len(registered)
	for name, r := range running {
		w, ok := registered[name]
		if !ok || w.identity != r.identity {
			changed = true
			continue
		}
		keep[name] = true
		changed = changed || !slices.Equal(r.roles, w.roles)
	}
	return keep, changed
}
