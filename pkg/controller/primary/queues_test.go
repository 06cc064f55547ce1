package primary

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestRegistryStatus(t *testing.T) {
	r := &mirrordv1alpha1.MirrordWorkloadQueueRegistry{ObjectMeta: metav1.ObjectMeta{Namespace: "hc", Name: "orders", UID: "u1", Generation: 3},
		Spec: mirrordv1alpha1.MirrordWorkloadQueueRegistrySpec{Consumer: mirrordv1alpha1.QueueConsumer{Name: "orders", WorkloadType: mirrordv1alpha1.QueueConsumerDeployment},
			Queues: map[string]mirrordv1alpha1.SplitQueue{"q": {QueueType: mirrordv1alpha1.QueueTypeSQS, NameSource: mirrordv1alpha1.QueueNameSource{EnvVar: "Q"}}}}}
	current := constructRegistryCopy("c1", r, "mirrord-system")
	old := current.DeepCopy()
	old.Spec.Queues = map[string]mirrordv1alpha1.SplitQueue{}
	for name, tc := range map[string]struct {
		clusters []registryCopyState
		synced   metav1.ConditionStatus
		reason   string
		each     []string // each cluster's message
	}{
		"every cluster current": {clusters: []registryCopyState{{cluster: "c1", self: true, reachable: true}, {cluster: "c2", reachable: true, copy: current}},
			synced: metav1.ConditionTrue, reason: mirrordv1alpha1.ReasonAllSynced, each: []string{"this Primary's own registry", "holds the current spec"}},
		"an old copy": {clusters: []registryCopyState{{cluster: "c2", reachable: true, copy: old}},
			synced: metav1.ConditionFalse, reason: mirrordv1alpha1.ReasonClusterUnreachable, each: []string{"copying the current spec"}},
		"no copy yet, and one unreachable": {clusters: []registryCopyState{{cluster: "c2", reachable: true}, {cluster: "c3", why: "dial tcp: refused"}},
			synced: metav1.ConditionFalse, reason: mirrordv1alpha1.ReasonClusterUnreachable, each: []string{"copying", "unreachable (dial tcp: refused)"}},
		"no Workload cluster": {synced: metav1.ConditionFalse, reason: mirrordv1alpha1.ReasonNoMembers},
	} {
		st := registryStatus(r, tc.clusters, nil)
		c := meta.FindStatusCondition(st.Conditions, mirrordv1alpha1.ConditionSynced)
		if st.ObservedGeneration != 3 || c == nil || c.Status != tc.synced || c.Reason != tc.reason || c.ObservedGeneration != 3 {
			t.Errorf("%s: %+v, want Synced %s %s", name, st, tc.synced, tc.reason)
		}
		if len(st.Clusters) != len(tc.each) {
			t.Errorf("%s: clusters %+v", name, st.Clusters)
			continue
		}
		for i, want := range tc.each {
			cs := st.Clusters[i]
			if !strings.Contains(cs.Message, want) || cs.Synced != (want == "this Primary's own registry" || want == "holds the current spec") {
				t.Errorf("%s: cluster %+v, want %q", name, cs, want)
			}
		}
	}
	if n := constructRegistryCopy("c1", r, "mirrord-system").Name; len(n) > 63 || !strings.HasPrefix(n, "queues-hc-orders-") {
		t.Errorf("copy name %q", n)
	}

	// Splits: live sessions on the consumer that ask for a queue of the registry, and per
	// cluster those whose queues are all ready there.
	sess := func(name string, target string, queue string, ready map[string]bool) *mirrordv1alpha1.MirrordSession {
		s := &mirrordv1alpha1.MirrordSession{ObjectMeta: metav1.ObjectMeta{Namespace: "hc", Name: name},
			Spec: mirrordv1alpha1.MirrordSessionSpec{Target: mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: target, Namespace: "hc"}}}
		if queue != "" {
			s.Spec.Features.SplitQueues = []mirrordv1alpha1.QueueSplitRequest{{QueueID: queue, MessageFilter: map[string]string{"a": "b"}}}
		}
		for _, c := range []string{"c2", "c3"} {
			if r, ok := ready[c]; ok {
				s.Status.Clusters = append(s.Status.Clusters, mirrordv1alpha1.SessionClusterStatus{Name: c, Queues: []mirrordv1alpha1.SessionQueueStatus{{QueueID: queue, Ready: r}}})
			}
		}
		return s
	}
	ending := sess("ending", "orders", "q", map[string]bool{"c2": true})
	ending.DeletionTimestamp = &metav1.Time{}
	st := registryStatus(r, []registryCopyState{{cluster: "c2", reachable: true, copy: current}, {cluster: "c3", reachable: true, copy: current}},
		[]*mirrordv1alpha1.MirrordSession{
			sess("both", "orders", "q", map[string]bool{"c2": true, "c3": true}),
			sess("rolling", "orders", "q", map[string]bool{"c2": true, "c3": false}),
			sess("unknown-queue", "orders", "other", map[string]bool{"c2": true}),
			sess("no-split", "orders", "", nil),
			sess("other-target", "api", "q", map[string]bool{"c2": true}),
			ending,
		})
	if st.Splits != 2 || st.Clusters[0].Splits != 2 || st.Clusters[1].Splits != 1 {
		t.Errorf("splits %d, per cluster %+v; want 2, c2 2, c3 1", st.Splits, st.Clusters)
	}
}
