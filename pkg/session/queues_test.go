package session

import (
	"strings"
	"testing"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestQueuesReady(t *testing.T) {
	def := []mirrordv1alpha1.ClusterRole{mirrordv1alpha1.ClusterRoleWorkload, mirrordv1alpha1.ClusterRoleDefault}
	work := []mirrordv1alpha1.ClusterRole{mirrordv1alpha1.ClusterRoleWorkload}
	ready := func(v string) []mirrordv1alpha1.SessionQueueStatus {
		return []mirrordv1alpha1.SessionQueueStatus{{QueueID: "orders", Variable: "Q", Ready: true, Value: v}}
	}
	asked := []mirrordv1alpha1.QueueSplitRequest{{QueueID: "orders", MessageFilter: map[string]string{"d": "a"}}}
	cases := []struct {
		name     string
		asked    []mirrordv1alpha1.QueueSplitRequest
		clusters []mirrordv1alpha1.SessionClusterStatus
		want     bool
		waits    string
	}{
		{"no queues asked", nil, nil, true, ""},
		{"nothing reported", asked, nil, false, "the Default cluster has not reported"},
		{"the Default ready and named", asked, []mirrordv1alpha1.SessionClusterStatus{{Name: "c2", Roles: def, Queues: ready("mirrord-s-x")}}, true, ""},
		{"the Default not named", asked, []mirrordv1alpha1.SessionClusterStatus{{Name: "c2", Roles: def, Queues: ready("")}}, false, "c2: orders: the session's queue is not named"},
		{"the Default without entries", asked, []mirrordv1alpha1.SessionClusterStatus{{Name: "c2", Roles: def}}, false, "c2: orders: not reported"},
		{"a Workload cluster rolling", asked, []mirrordv1alpha1.SessionClusterStatus{{Name: "c2", Roles: def, Queues: ready("q")},
			{Name: "c3", Roles: work, Queues: []mirrordv1alpha1.SessionQueueStatus{{QueueID: "orders", Message: "the consumer is rolling"}}}}, false, "c3: orders: the consumer is rolling"},
		{"a Workload cluster that splits nothing", asked, []mirrordv1alpha1.SessionClusterStatus{{Name: "c2", Roles: def, Queues: ready("q")}, {Name: "c3", Roles: work}}, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &mirrordv1alpha1.MirrordSession{}
			s.Spec.Features.SplitQueues = c.asked
			s.Status.Clusters = c.clusters
			got, waits := QueuesReady(s)
			if got != c.want || !strings.Contains(waits, c.waits) || (c.want && waits != "") {
				t.Errorf("QueuesReady = %v, %q; want %v, %q", got, waits, c.want, c.waits)
			}
		})
	}
}

func TestQueueEnv(t *testing.T) {
	s := &mirrordv1alpha1.MirrordSession{}
	s.Status.Clusters = []mirrordv1alpha1.SessionClusterStatus{
		{Name: "c3", Roles: []mirrordv1alpha1.ClusterRole{mirrordv1alpha1.ClusterRoleWorkload},
			Queues: []mirrordv1alpha1.SessionQueueStatus{{QueueID: "orders", Variable: "Q", Ready: true, Value: "from-a-workload"}}},
		{Name: "c2", Roles: []mirrordv1alpha1.ClusterRole{mirrordv1alpha1.ClusterRoleDefault},
			Queues: []mirrordv1alpha1.SessionQueueStatus{{QueueID: "orders", Variable: "Q", Ready: true, Value: "mine"}, {QueueID: "events", Variable: "E", Value: "not-ready"}}},
	}
	if got := QueueEnv(s); len(got) != 1 || got["Q"] != "mine" {
		t.Errorf("QueueEnv = %v, want Q=mine only", got)
	}
}
