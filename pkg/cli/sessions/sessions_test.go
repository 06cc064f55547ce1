package sessions

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestPrintTable(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	ready := mirrordv1alpha1.MirrordSession{
		ObjectMeta: metav1.ObjectMeta{Name: "alice-api-x7k2", Namespace: "shop", CreationTimestamp: metav1.NewTime(now.Add(-90 * time.Second))},
		Spec: mirrordv1alpha1.MirrordSessionSpec{Owner: "alice", Target: mirrordv1alpha1.Target{Kind: "Deployment", Name: "api", Namespace: "shop"},
			Features: mirrordv1alpha1.Features{Network: mirrordv1alpha1.NetworkFeature{Incoming: mirrordv1alpha1.IncomingFeature{
				Mode: mirrordv1alpha1.IncomingModeSteal, HTTPFilter: &mirrordv1alpha1.HTTPFilter{Header: "^X-User: alice$"}}}}},
		Status: mirrordv1alpha1.MirrordSessionStatus{Phase: mirrordv1alpha1.SessionReady, ClustersReady: "2/2", TargetDescription: "deployment/api",
			Clusters: []mirrordv1alpha1.SessionClusterStatus{
				{Name: "c2", Roles: []mirrordv1alpha1.ClusterRole{"Workload", "Default"}},
				{Name: "c3", Roles: []mirrordv1alpha1.ClusterRole{"Workload"}}}},
	}
	pending := mirrordv1alpha1.MirrordSession{
		ObjectMeta: metav1.ObjectMeta{Name: "bob-db-1", Namespace: "data", CreationTimestamp: metav1.NewTime(now.Add(-3 * time.Hour))},
		Spec:       mirrordv1alpha1.MirrordSessionSpec{Owner: "bob", Target: mirrordv1alpha1.Target{Kind: "Pod", Name: "db-0", Namespace: "data", Container: "pg"}},
		Status:     mirrordv1alpha1.MirrordSessionStatus{Phase: mirrordv1alpha1.SessionDegraded, ClustersReady: "1/2"},
	}
	var b bytes.Buffer
	if err := PrintTable(&b, []mirrordv1alpha1.MirrordSession{ready, pending}, true, now); err != nil {
		t.Fatal(err)
	}
	want := `NAMESPACE   NAME             OWNER   TARGET                  MODE                            CLUSTERS        READY            AGE
shop        alice-api-x7k2   alice   deployment/api          steal(header=^X-User: alice$)   c2(D,W),c3(W)   2/2              90s
data        bob-db-1         bob     pod/db-0/container/pg   mirror                          <none>          1/2 (Degraded)   3h
`
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestKillNeedsNamesOrAll(t *testing.T) {
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	for _, tc := range []struct {
		o     KillOptions
		names []string
		want  string
	}{
		{KillOptions{}, nil, "say which sessions to end"},
		{KillOptions{All: true}, []string{"x"}, "not both"},
		{KillOptions{AllNamespaces: true}, []string{"x"}, "needs --all"},
	} {
		tc.o.ConfigFlags, tc.o.IOStreams = genericclioptions.NewConfigFlags(false), streams
		err := tc.o.Run(t.Context(), tc.names)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v %v: error %v, want it to say %q", tc.o, tc.names, err, tc.want)
		}
	}
}
