package primary

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/naming"
)

func TestCopiedState(t *testing.T) {
	b := &mirrordv1alpha1.MirrordDBBranch{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "branch-orders", UID: "u1"},
		Spec: mirrordv1alpha1.MirrordDBBranchSpec{Engine: mirrordv1alpha1.DBEnginePostgreSQL, Database: "orders",
			Target: mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: "api", Namespace: "shop"}},
	}
	up := defaultView{name: "c2", reachable: true}
	host := naming.DBBranch("copy-uid") + ".shop.svc"
	withStatus := func(st mirrordv1alpha1.MirrordDBBranchStatus) *mirrordv1alpha1.MirrordDBBranch {
		return &mirrordv1alpha1.MirrordDBBranch{Status: st}
	}
	ready := func(e *mirrordv1alpha1.DBEndpoint) *mirrordv1alpha1.MirrordDBBranch {
		return withStatus(mirrordv1alpha1.MirrordDBBranchStatus{Phase: mirrordv1alpha1.DBBranchReady, Reason: mirrordv1alpha1.ReasonBranchReady, Message: "serving", Endpoint: e})
	}
	for name, tc := range map[string]struct {
		copy     *mirrordv1alpha1.MirrordDBBranch
		def      defaultView
		phase    mirrordv1alpha1.DBBranchPhase
		reason   string
		within   string
		endpoint bool
	}{
		"no Default cluster":  {def: defaultView{}, phase: mirrordv1alpha1.DBBranchPending, reason: mirrordv1alpha1.ReasonBranchSyncing, within: "no Default cluster is registered"},
		"Default unreachable": {def: defaultView{name: "c2", why: "dial tcp: refused"}, copy: ready(&mirrordv1alpha1.DBEndpoint{Host: host, Port: 5432, Database: "orders"}), phase: mirrordv1alpha1.DBBranchPending, reason: mirrordv1alpha1.ReasonClusterUnreachable, within: "c2 is unreachable (dial tcp: refused)"},
		"no copy yet":         {def: up, phase: mirrordv1alpha1.DBBranchPending, reason: mirrordv1alpha1.ReasonBranchSyncing, within: "copying the branch to the Default cluster c2"},
		"copy not started":    {def: up, copy: withStatus(mirrordv1alpha1.MirrordDBBranchStatus{}), phase: mirrordv1alpha1.DBBranchPending, reason: mirrordv1alpha1.ReasonBranchSyncing, within: "waiting for the Default cluster c2"},
		"seeding": {def: up, copy: withStatus(mirrordv1alpha1.MirrordDBBranchStatus{Phase: mirrordv1alpha1.DBBranchPending, Reason: mirrordv1alpha1.ReasonBranchSeeding, Message: "copying from the source database"}),
			phase: mirrordv1alpha1.DBBranchPending, reason: mirrordv1alpha1.ReasonBranchSeeding, within: "copying from the source"},
		"failed, said as the Default says it": {def: up, copy: withStatus(mirrordv1alpha1.MirrordDBBranchStatus{Phase: mirrordv1alpha1.DBBranchFailed, Reason: mirrordv1alpha1.ReasonBranchCopyFailed, Message: "pg_dump: connection refused"}),
			phase: mirrordv1alpha1.DBBranchFailed, reason: mirrordv1alpha1.ReasonBranchCopyFailed, within: "pg_dump: connection refused"},
		"ready":              {def: up, copy: ready(&mirrordv1alpha1.DBEndpoint{Host: host, Port: 5432, Database: "orders"}), phase: mirrordv1alpha1.DBBranchReady, reason: mirrordv1alpha1.ReasonBranchReady, within: "serving", endpoint: true},
		"long message":       {def: up, copy: withStatus(mirrordv1alpha1.MirrordDBBranchStatus{Phase: mirrordv1alpha1.DBBranchFailed, Reason: mirrordv1alpha1.ReasonBranchCopyFailed, Message: strings.Repeat("x", 5000)}), phase: mirrordv1alpha1.DBBranchFailed, reason: mirrordv1alpha1.ReasonBranchCopyFailed, within: strings.Repeat("x", maxCopiedMessage) + "..."},
		"unknown reason":     {def: up, copy: withStatus(mirrordv1alpha1.MirrordDBBranchStatus{Phase: mirrordv1alpha1.DBBranchPending, Reason: "Pwned"}), phase: mirrordv1alpha1.DBBranchFailed, reason: mirrordv1alpha1.ReasonBranchBadReport, within: `unknown reason "Pwned"`},
		"unknown phase":      {def: up, copy: withStatus(mirrordv1alpha1.MirrordDBBranchStatus{Phase: "Done", Reason: mirrordv1alpha1.ReasonBranchReady}), phase: mirrordv1alpha1.DBBranchFailed, reason: mirrordv1alpha1.ReasonBranchBadReport, within: `unknown phase "Done"`},
		"ready, no endpoint": {def: up, copy: ready(nil), phase: mirrordv1alpha1.DBBranchFailed, reason: mirrordv1alpha1.ReasonBranchBadReport, within: "without an endpoint"},
		"endpoint elsewhere": {def: up, copy: ready(&mirrordv1alpha1.DBEndpoint{Host: "evil.example.com", Port: 5432, Database: "orders"}),
			phase: mirrordv1alpha1.DBBranchFailed, reason: mirrordv1alpha1.ReasonBranchBadReport, within: `"evil.example.com" that is no branch Service of namespace shop`},
		"endpoint in another namespace": {def: up, copy: ready(&mirrordv1alpha1.DBEndpoint{Host: naming.DBBranch("x") + ".kube-system.svc", Port: 5432, Database: "orders"}),
			phase: mirrordv1alpha1.DBBranchFailed, reason: mirrordv1alpha1.ReasonBranchBadReport, within: "no branch Service of namespace shop"},
		"endpoint, other port":     {def: up, copy: ready(&mirrordv1alpha1.DBEndpoint{Host: host, Port: 22, Database: "orders"}), phase: mirrordv1alpha1.DBBranchFailed, reason: mirrordv1alpha1.ReasonBranchBadReport, within: "port 22, not PostgreSQL's"},
		"endpoint, other database": {def: up, copy: ready(&mirrordv1alpha1.DBEndpoint{Host: host, Port: 5432, Database: "postgres"}), phase: mirrordv1alpha1.DBBranchFailed, reason: mirrordv1alpha1.ReasonBranchBadReport, within: `database "postgres", not "orders"`},
	} {
		got := copiedState(b, tc.copy, tc.def)
		if got.Phase != tc.phase || got.Reason != tc.reason || !strings.Contains(got.Message, tc.within) || (got.Endpoint != nil) != tc.endpoint {
			t.Errorf("%s: %s %s %q endpoint %v; want %s %s ...%.60s... endpoint %v", name, got.Phase, got.Reason, got.Message, got.Endpoint, tc.phase, tc.reason, tc.within, tc.endpoint)
		}
		if len(got.Message) > maxCopiedMessage+200 {
			t.Errorf("%s: a message of %d bytes", name, len(got.Message))
		}
	}
}

func TestConstructBranchCopy(t *testing.T) {
	b := &mirrordv1alpha1.MirrordDBBranch{
		ObjectMeta: metav1.ObjectMeta{Namespace: "a-namespace-with-a-rather-long-name-indeed", Name: "branch-" + strings.Repeat("y", 40), UID: "u1"},
		Spec:       mirrordv1alpha1.MirrordDBBranchSpec{ID: "orders", Owner: "alice", Engine: mirrordv1alpha1.DBEnginePostgreSQL, TTLSeconds: 60},
	}
	cp := constructBranchCopy("c1", b, "mirrord-system")
	if errs := validation.IsDNS1123Subdomain(cp.Name); len(errs) > 0 || len(cp.Name) > 63 {
		t.Errorf("copy name %q: %v", cp.Name, errs)
	}
	if cp.Namespace != "mirrord-system" || cp.Spec.ID != "orders" || cp.Spec.Owner != "alice" || cp.Spec.TTLSeconds != 60 {
		t.Errorf("copy %+v", cp)
	}
	l := cp.Labels
	if l[mirrordv1alpha1.LabelPrimary] != "c1" || l[mirrordv1alpha1.LabelParentUID] != "u1" || l[mirrordv1alpha1.LabelParentNamespace] != b.Namespace || l[mirrordv1alpha1.LabelParentName] != b.Name {
		t.Errorf("labels %v", l)
	}
	for _, v := range l {
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("label value %q: %v", v, errs)
		}
	}
	b2 := b.DeepCopy()
	b2.UID = "u2"
	if constructBranchCopy("c1", b2, "mirrord-system").Name == cp.Name || constructBranchCopy("c9", b, "mirrord-system").Name == cp.Name {
		t.Error("copies of another branch of the name, or of another Primary, share a name")
	}
}
