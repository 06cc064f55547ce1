package apitest

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	membercontroller "github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/member"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/naming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/roles"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/credentials"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
)

// TestDBBranchSync: a management-only Primary (c1) copies a user's branch into its Default
// cluster (c2, another API server) with the Primary's member credentials and RBAC there; c2's
// controller makes the pod from the copy, its status comes back to the Primary (Pending, then
// Ready with the endpoint); a branch deleted on the Primary goes from c2 with its pod and
// Service; while c2 is unreachable a new branch waits (never fails) and one deleted meanwhile
// goes once c2 answers again; c2 deletes the copies of a Primary silent for their TTL. (No kubelet: pod states are written as a kubelet would.)
func TestDBBranchSync(t *testing.T) {
	t.Parallel()
	p, d := Start(t), Start(t)
	p.Install(t, "primary-management-only")
	d.Install(t, "workload-default")
	grantUsers(t, p)
	ctx := t.Context()
	if _, err := d.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hc"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Kube.CoreV1().ServiceAccounts("hc").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	web := deployment("hc", "web")
	web.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "DATABASE_URL", Value: "postgres://app:pw@db.hc.svc/orders"}}
	if _, err := d.Kube.AppsV1().Deployments("hc").Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	register := registerMember(t, p, d, "c2", true)
	register(d.Config.Host)
	runControllerAs(t, p, "c1", roles.KeyPrimary, roles.KeyManagementOnly)
	runControllerAs(t, d, "c2", roles.KeyWorkload, roles.KeyDefault)

	asAlice, err := versioned.NewForConfig(p.Impersonate(alice))
	if err != nil {
		t.Fatal(err)
	}
	branch := func(id string) *mirrordv1alpha1.MirrordDBBranch {
		return &mirrordv1alpha1.MirrordDBBranch{ObjectMeta: metav1.ObjectMeta{Name: "branch-" + id},
			Spec: mirrordv1alpha1.MirrordDBBranchSpec{ID: id, Owner: alice, OwnerGroups: []string{"system:authenticated"},
				Target: mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: "web", Namespace: "hc"},
				Engine: mirrordv1alpha1.DBEnginePostgreSQL, Database: "orders",
				Connection: mirrordv1alpha1.DBConnection{URL: &mirrordv1alpha1.DBValueSource{Variable: "DATABASE_URL"}},
				Copy:       mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopySchema}, TTLSeconds: 300, CreationTimeoutSeconds: 600}}
	}
	onPrimary := func(ctx context.Context, name string, phase mirrordv1alpha1.DBBranchPhase, reason string) (*mirrordv1alpha1.MirrordDBBranch, error) {
		got, err := p.Mirrord.MirrordV1alpha1().MirrordDBBranches("hc").Get(ctx, name, metav1.GetOptions{})
		if err == nil && (got.Status.Phase != phase || got.Status.Reason != reason) {
			err = fmt.Errorf("on the Primary: %s %s: %s", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		return got, err
	}
	copyOf := func(ctx context.Context, b *mirrordv1alpha1.MirrordDBBranch) (*mirrordv1alpha1.MirrordDBBranch, error) {
		return d.Mirrord.MirrordV1alpha1().MirrordDBBranches("mirrord-system").Get(ctx, naming.DBBranchCopy("c1", "hc", b.Name, b.UID), metav1.GetOptions{})
	}
	copies := func(ctx context.Context) (int, error) {
		l, err := d.Mirrord.MirrordV1alpha1().MirrordDBBranches("mirrord-system").List(ctx, metav1.ListOptions{LabelSelector: labels.Set{mirrordv1alpha1.LabelPrimary: "c1"}.String()})
		if err != nil {
			return 0, err
		}
		return len(l.Items), nil
	}

	// A copy from a Primary (c9) that never renews its Lease in c2: c2 deletes it, with its
	// pod, once the Lease's duration and the copy's TTL have passed (checked at the end).
	ghost := branch("ghost")
	ghost.Name, ghost.Namespace, ghost.Spec.TTLSeconds = "db-hc-ghost", "mirrord-system", 1
	ghost.Labels = map[string]string{mirrordv1alpha1.LabelPrimary: "c9", mirrordv1alpha1.LabelParentNamespace: "hc", mirrordv1alpha1.LabelParentName: "branch-ghost", mirrordv1alpha1.LabelParentUID: "u9"}
	if ghost, err = d.Mirrord.MirrordV1alpha1().MirrordDBBranches("mirrord-system").Create(ctx, ghost, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The branch is copied to c2, whose controller makes its pod; the copy's status comes back.
	b, err := asAlice.MirrordV1alpha1().MirrordDBBranches("hc").Create(ctx, branch("team"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var cp *mirrordv1alpha1.MirrordDBBranch
	var pod *corev1.Pod
	waitFor(t, "the copy in c2, its pod, and Seeding on the Primary", func(ctx context.Context) error {
		if cp, err = copyOf(ctx, b); err != nil {
			return err
		}
		if pod, err = d.Kube.CoreV1().Pods("hc").Get(ctx, naming.DBBranch(cp.UID), metav1.GetOptions{}); err != nil {
			return err
		}
		_, err := onPrimary(ctx, b.Name, mirrordv1alpha1.DBBranchPending, mirrordv1alpha1.ReasonBranchSeeding)
		return err
	})
	if cp.Spec.Owner != alice || cp.Spec.Target.Namespace != "hc" || cp.Labels[mirrordv1alpha1.LabelParentUID] != string(b.UID) {
		t.Errorf("the copy: %+v %v", cp.Spec, cp.Labels)
	}
	// Seeded, as the kubelet would say: Ready on the Primary, with c2's endpoint.
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "db", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
	if _, err := d.Kube.CoreV1().Pods("hc").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Ready on the Primary with c2's endpoint", func(ctx context.Context) error {
		got, err := onPrimary(ctx, b.Name, mirrordv1alpha1.DBBranchReady, mirrordv1alpha1.ReasonBranchReady)
		if err == nil && (got.Status.Endpoint == nil || got.Status.Endpoint.Host != naming.DBBranch(cp.UID)+".hc.svc" || got.Status.Endpoint.Port != 5432 || got.Status.Endpoint.Database != "orders") {
			err = fmt.Errorf("endpoint %+v", got.Status.Endpoint)
		}
		return err
	})
	// The Primary's expiry bookkeeping sits beside the copied status.
	waitFor(t, "an expiry on the Primary", func(ctx context.Context) error {
		got, err := onPrimary(ctx, b.Name, mirrordv1alpha1.DBBranchReady, mirrordv1alpha1.ReasonBranchReady)
		if err == nil && got.Status.ExpireTime == nil {
			err = fmt.Errorf("no expireTime: %+v", got.Status)
		}
		return err
	})

	// Deleted on the Primary: the copy, its pod and Service go from c2.
	if err := asAlice.MirrordV1alpha1().MirrordDBBranches("hc").Delete(ctx, b.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the copy, its pod and Service gone from c2", func(ctx context.Context) error {
		if _, err := copyOf(ctx, b); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the copy is still there (%v)", err)
		}
		return gone(ctx, d, naming.DBBranch(cp.UID))
	})

	// c2 unreachable (its address changed to one nobody answers): a new branch waits, saying
	// why, and one deleted meanwhile goes once c2 answers again.
	kept, err := asAlice.MirrordV1alpha1().MirrordDBBranches("hc").Create(ctx, branch("kept"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second branch's copy", func(ctx context.Context) error { _, err := copyOf(ctx, kept); return err })
	register("https://127.0.0.1:" + freePorts(t, 1)[0])
	waiting, err := asAlice.MirrordV1alpha1().MirrordDBBranches("hc").Create(ctx, branch("waiting"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a branch waiting for its Default", func(ctx context.Context) error {
		_, err := onPrimary(ctx, waiting.Name, mirrordv1alpha1.DBBranchPending, mirrordv1alpha1.ReasonClusterUnreachable)
		return err
	})
	if err := asAlice.MirrordV1alpha1().MirrordDBBranches("hc").Delete(ctx, kept.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the Primary would delete it now, if it could
	if _, err := copyOf(ctx, kept); err != nil {
		t.Fatalf("the copy of a branch deleted while its Default was unreachable: %v (want it there until c2 answers)", err)
	}
	register(d.Config.Host)
	waitFor(t, "the waiting branch copied, the deleted one's copy gone", func(ctx context.Context) error {
		if _, err := copyOf(ctx, waiting); err != nil {
			return err
		}
		if _, err := copyOf(ctx, kept); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the deleted branch's copy is still there (%v)", err)
		}
		if n, err := copies(ctx); err != nil || n != 1 {
			return fmt.Errorf("%d copies (%v), want 1", n, err)
		}
		_, err := onPrimary(ctx, waiting.Name, mirrordv1alpha1.DBBranchPending, mirrordv1alpha1.ReasonBranchSeeding)
		return err
	})

	if wait := time.Until(ghost.CreationTimestamp.Add(membercontroller.DefaultPrimaryLeaseDuration)); wait > 0 {
		time.Sleep(wait) // the silent Primary's Lease duration; the TTL is within waitFor's time
	}
	waitFor(t, "the silent Primary's copy gone from c2, with its pod", func(ctx context.Context) error {
		if _, err := d.Mirrord.MirrordV1alpha1().MirrordDBBranches("mirrord-system").Get(ctx, ghost.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the copy is still there (%v)", err)
		}
		return gone(ctx, d, naming.DBBranch(ghost.UID))
	})
}

// registerMember registers member m on Primary p as cluster name (a Workload, and the
// Default if def), as `kubectl mirrord cluster register` does: a token of m's mirrord-primary
// account, with m's CA. The returned function points the registration at a server (m's own,
// or one nobody answers), creating it the first time.
func registerMember(t *testing.T, p, m *Server, name string, def bool) func(server string) {
	t.Helper()
	ctx := t.Context()
	asPrimary, err := kubernetes.NewForConfig(m.Impersonate("system:serviceaccount:mirrord-system:"+mirrordv1alpha1.PrimaryServiceAccount,
		"system:serviceaccounts", "system:serviceaccounts:mirrord-system"))
	if err != nil {
		t.Fatal(err)
	}
	token, issued, expiry, err := credentials.RequestToken(ctx, asPrimary, "mirrord-system", credentials.MemberTokenLifetime)
	if err != nil {
		t.Fatal(err)
	}
	secret := "mirrord-cluster-" + name
	if _, err := p.Kube.CoreV1().Secrets("mirrord-system").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secret, Namespace: "mirrord-system"},
		Data: credentials.Data(token, m.CA, issued, expiry)}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return func(server string) {
		mc, err := p.Mirrord.MirrordV1alpha1().MirrordClusters().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = p.Mirrord.MirrordV1alpha1().MirrordClusters().Create(ctx, &mirrordv1alpha1.MirrordCluster{ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: mirrordv1alpha1.MirrordClusterSpec{Server: server, SecretRef: mirrordv1alpha1.SecretReference{Name: secret},
					Workload: true, Default: def, Namespace: "mirrord-system"}}, metav1.CreateOptions{})
		} else if err == nil {
			mc.Spec.Server = server
			_, err = p.Mirrord.MirrordV1alpha1().MirrordClusters().Update(ctx, mc, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
