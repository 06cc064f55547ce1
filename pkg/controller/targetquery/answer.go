package targetquery

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/targets"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

// MaxNameReviews bounds the SubjectAccessReviews one query asks for single objects (for a
// user granted the mirrord verb on named workloads only, not on a whole kind).
const MaxNameReviews = 100

// clusterAnswer is one Workload cluster's answer, or why there is none.
type clusterAnswer struct {
	name   string
	answer protocol.TargetsAnswer
	err    error
}

// object is a target's object as RBAC names it: a pod's containers are the pod's.
type object struct {
	kind mirrordv1alpha1.TargetKind
	name string
}

// objectOf is the object of a path (deployment/api, pod/api-1/container/app).
func objectOf(path string) (object, bool) {
	t, err := target.Parse(path, "", "ns")
	if err != nil || t.Name == "" {
		return object{}, false
	}
	return object{kind: t.Kind, name: t.Name}, true
}

// merge is every cluster's targets once each, with the clusters that have it, in mirrord's
// order of kinds and by path within a kind; a path that does not parse is dropped (a member
// speaks for its own cluster only, and only in paths).
func merge(answers []clusterAnswer) []mirrordv1alpha1.FoundTarget {
	where := map[string][]string{}
	for _, a := range answers {
		if a.err != nil {
			continue
		}
		for _, p := range a.answer.Targets {
			if _, ok := objectOf(p); !ok || slices.Contains(where[p], a.name) {
				continue
			}
			where[p] = append(where[p], a.name)
		}
	}
	out := make([]mirrordv1alpha1.FoundTarget, 0, len(where))
	for p, cs := range where {
		sort.Strings(cs)
		out = append(out, mirrordv1alpha1.FoundTarget{Path: p, Clusters: cs})
	}
	sort.Slice(out, func(i, j int) bool {
		oi, _ := objectOf(out[i].Path)
		oj, _ := objectOf(out[j].Path)
		if ri, rj := targets.Rank(oi.kind), targets.Rank(oj.kind); ri != rj {
			return ri < rj
		}
		return out[i].Path < out[j].Path
	})
	return out
}

// kindsOf is the kinds found, in order: each is one namespace-wide review.
func kindsOf(found []mirrordv1alpha1.FoundTarget) []mirrordv1alpha1.TargetKind {
	var kinds []mirrordv1alpha1.TargetKind
	for _, f := range found {
		if o, _ := objectOf(f.Path); !slices.Contains(kinds, o.kind) {
			kinds = append(kinds, o.kind)
		}
	}
	return kinds
}

// namesToReview is the objects of the kinds RBAC did not grant whole, each once, at most
// MaxNameReviews of them; more says some were left unasked.
func namesToReview(found []mirrordv1alpha1.FoundTarget, kindAllowed map[mirrordv1alpha1.TargetKind]bool) (names []object, more bool) {
	seen := map[object]bool{}
	for _, f := range found {
		o, _ := objectOf(f.Path)
		if kindAllowed[o.kind] || seen[o] {
			continue
		}
		if len(names) == MaxNameReviews {
			return names, true
		}
		seen[o] = true
		names = append(names, o)
	}
	return names, false
}

// decide is the query's answer: the targets found that RBAC lets the owner run sessions on
// (a whole kind, or the object by name), each cluster's count and problem, and what the answer
// leaves out.
func decide(answers []clusterAnswer, found []mirrordv1alpha1.FoundTarget, kindAllowed map[mirrordv1alpha1.TargetKind]bool,
	nameAllowed map[object]bool, namesLeft bool) mirrordv1alpha1.MirrordTargetQueryStatus {
	var st mirrordv1alpha1.MirrordTargetQueryStatus
	if len(answers) == 0 {
		st.Phase = mirrordv1alpha1.TargetQueryFailed
		st.Message = "no Workload cluster is registered: an admin adds one with kubectl mirrord cluster register"
		return st
	}
	count := map[string]int32{}
	for _, f := range found {
		o, _ := objectOf(f.Path)
		if !kindAllowed[o.kind] && !nameAllowed[o] {
			continue
		}
		st.Targets = append(st.Targets, f)
		for _, c := range f.Clusters {
			count[c]++
		}
	}
	if len(st.Targets) > mirrordv1alpha1.MaxTargetsPerQuery {
		st.Targets, st.Truncated = st.Targets[:mirrordv1alpha1.MaxTargetsPerQuery], true
	}
	var notes []string
	failed := 0
	for _, a := range answers {
		c := mirrordv1alpha1.TargetQueryCluster{Name: a.name, Targets: count[a.name]}
		switch {
		case a.err != nil:
			c.Problem = a.err.Error()
			failed++
		case a.answer.Problem != "":
			c.Problem = a.answer.Problem
		case a.answer.Truncated:
			c.Problem = fmt.Sprintf("more than %d objects of a kind: the answer holds the first", mirrordv1alpha1.MaxTargetsPerQuery)
			st.Truncated = true
		}
		st.Clusters = append(st.Clusters, c)
	}
	if namesLeft {
		st.Truncated = true
		notes = append(notes, fmt.Sprintf("RBAC was asked about %d workloads by name and no more: an admin can grant the mirrord verb on a whole kind (the mirrord-user ClusterRole)", MaxNameReviews))
	}
	st.Phase = mirrordv1alpha1.TargetQueryComplete
	if failed == len(answers) {
		st.Phase = mirrordv1alpha1.TargetQueryFailed
		notes = append([]string{"no Workload cluster answered"}, notes...)
	}
	st.Message = strings.Join(notes, "; ")
	return st
}
