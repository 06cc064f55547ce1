package primary

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/queuesplit"
)

// TestSessionQueues: what a session is told of its queues, from a member's report that is
// trusted only as far as its shape.
func TestSessionQueues(t *testing.T) {
	reg := &mirrordv1alpha1.MirrordWorkloadQueueRegistry{ObjectMeta: metav1.ObjectMeta{Name: "worker-queues"},
		Spec: mirrordv1alpha1.MirrordWorkloadQueueRegistrySpec{Queues: map[string]mirrordv1alpha1.SplitQueue{
			"orders": {QueueType: mirrordv1alpha1.QueueTypeSQS, NameSource: mirrordv1alpha1.QueueNameSource{EnvVar: "ORDERS_QUEUE"}}}}}
	asked := []mirrordv1alpha1.QueueSplitRequest{{QueueID: "orders", MessageFilter: map[string]string{"dev": "^alice$"}}}
	name := queuesplit.QueueName(queuesplit.RoleSession, []string{"uid", "orders"}, "orders")
	url := "http://sqs.local:5100/000000000000/" + name
	cases := []struct {
		name      string
		r         *mirrordv1alpha1.MirrordWorkloadQueueRegistry
		asked     []mirrordv1alpha1.QueueSplitRequest
		reported  []mirrordv1alpha1.SessionQueueStatus
		isDefault bool
		want      mirrordv1alpha1.SessionQueueStatus
	}{
		{"no registry", nil, asked, nil, true, mirrordv1alpha1.SessionQueueStatus{QueueID: "orders", Message: "no MirrordWorkloadQueueRegistry"}},
		{"unknown queue", reg, []mirrordv1alpha1.QueueSplitRequest{{QueueID: "events"}}, nil, true, mirrordv1alpha1.SessionQueueStatus{QueueID: "events", Message: `has no queue "events"`}},
		{"not reported", reg, asked, nil, false, mirrordv1alpha1.SessionQueueStatus{QueueID: "orders", Variable: "ORDERS_QUEUE", Message: "not reported yet"}},
		{"a Workload cluster ready", reg, asked, []mirrordv1alpha1.SessionQueueStatus{{QueueID: "orders", Ready: true}}, false,
			mirrordv1alpha1.SessionQueueStatus{QueueID: "orders", Variable: "ORDERS_QUEUE", Ready: true}},
		{"a Workload cluster's value is not taken", reg, asked, []mirrordv1alpha1.SessionQueueStatus{{QueueID: "orders", Ready: true, Value: name}}, false,
			mirrordv1alpha1.SessionQueueStatus{QueueID: "orders", Variable: "ORDERS_QUEUE", Ready: true}},
		{"the member's variable is not taken", reg, asked, []mirrordv1alpha1.SessionQueueStatus{{QueueID: "orders", Variable: "LD_PRELOAD", Ready: true}}, false,
			mirrordv1alpha1.SessionQueueStatus{QueueID: "orders", Variable: "ORDERS_QUEUE", Ready: true}},
		{"the Default's queue name", reg, asked, []mirrordv1alpha1.SessionQueueStatus{{QueueID: "orders", Ready: true, Value: name}}, true,
			mirrordv1alpha1.SessionQueueStatus{QueueID: "orders", Variable: "ORDERS_QUEUE", Ready: true, Value: name}},
		{"the Default's queue URL", reg, asked, []mirrordv1alpha1.SessionQueueStatus{{QueueID: "orders", Ready: true, Value: url}}, true,
			mirrordv1alpha1.SessionQueueStatus{QueueID: "orders", Variable: "ORDERS_QUEUE", Ready: true, Value: url}},
		{"the Default names another queue", reg, asked, []mirrordv1alpha1.SessionQueueStatus{{QueueID: "orders", Ready: true, Value: "orders"}}, true,
			mirrordv1alpha1.SessionQueueStatus{QueueID: "orders", Variable: "ORDERS_QUEUE", Message: "not a session's queue"}},
		{"the Default ready without a queue", reg, asked, []mirrordv1alpha1.SessionQueueStatus{{QueueID: "orders", Ready: true}}, true,
			mirrordv1alpha1.SessionQueueStatus{QueueID: "orders", Variable: "ORDERS_QUEUE", Message: "has not named the session's queue"}},
		{"waiting, said why", reg, asked, []mirrordv1alpha1.SessionQueueStatus{{QueueID: "orders", Message: strings.Repeat("x", 2000)}}, false,
			mirrordv1alpha1.SessionQueueStatus{QueueID: "orders", Variable: "ORDERS_QUEUE", Message: strings.Repeat("x", 1024)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := sessionQueues(c.asked, c.r, c.reported, c.isDefault)
			if len(got) != 1 {
				t.Fatalf("%d entries", len(got))
			}
			g, w := got[0], c.want
			if g.QueueID != w.QueueID || g.Variable != w.Variable || g.Ready != w.Ready || g.Value != w.Value || !strings.Contains(g.Message, w.Message) || (w.Message == "" && g.Message != "") {
				t.Errorf("got %+v, want %+v", g, w)
			}
		})
	}
}
