package apitest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/naming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/dbbranch"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
)

// TestDBBranches: the Default's controller makes a branch's pod (the target's own Secret
// reference for its URL, this binary copied in, the official image) and Service, fails a
// branch whose source it cannot find or whose pod failed (leaving nothing), and the Primary
// deletes an unused branch after its TTL, with its pod and Service; admission lets only who
// may target a workload branch its database, in their own name. (No kubelet here: pod
// states are written as a kubelet would.)
func TestDBBranches(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Install(t, "single-cluster")
	grantUsers(t, s)
	runController(t, s)
	ctx := t.Context()
	if _, err := s.Kube.CoreV1().ServiceAccounts("hc").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	web := deployment("hc", "web")
	web.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "DATABASE_URL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "url"}}}}
	if _, err := s.Kube.AppsV1().Deployments("hc").Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	asAlice, err := versioned.NewForConfig(s.Impersonate(alice))
	if err != nil {
		t.Fatal(err)
	}
	branch := func(ns, id, target, variable string, ttl int32) *mirrordv1alpha1.MirrordDBBranch {
		return &mirrordv1alpha1.MirrordDBBranch{ObjectMeta: metav1.ObjectMeta{Name: "branch-" + id},
			Spec: mirrordv1alpha1.MirrordDBBranchSpec{ID: id, Owner: alice, OwnerGroups: []string{"system:authenticated"},
				Target:     mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: target, Namespace: ns},
				Engine:     mirrordv1alpha1.DBEnginePostgreSQL,
				Connection: mirrordv1alpha1.DBConnection{URL: &mirrordv1alpha1.DBValueSource{Variable: variable}},
				Copy:       mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopySchema}, TTLSeconds: ttl, CreationTimeoutSeconds: 600}}
	}
	state := func(name string) (*mirrordv1alpha1.MirrordDBBranch, error) {
		return s.Mirrord.MirrordV1alpha1().MirrordDBBranches("hc").Get(ctx, name, metav1.GetOptions{})
	}

	// Admission: alice in her own name on what she may target; nobody else's name, target or
	// namespace. The API server loads a new admission policy a moment after it is created:
	// wait until it refuses what it must (a dry run, which leaves nothing).
	waitFor(t, "the branch admission policy in force", func(ctx context.Context) error {
		b := branch("hc", "x", "web", "DATABASE_URL", 300)
		b.Spec.Owner = bob
		_, err := asAlice.MirrordV1alpha1().MirrordDBBranches("hc").Create(ctx, b, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			return errors.New("a branch in bob's name was admitted")
		}
		return nil
	})
	for name, tc := range map[string]struct {
		b    *mirrordv1alpha1.MirrordDBBranch
		ns   string
		want string
	}{
		"as bob": {b: func() *mirrordv1alpha1.MirrordDBBranch {
			b := branch("hc", "x", "web", "DATABASE_URL", 300)
			b.Spec.Owner = bob
			return b
		}(), ns: "hc", want: "spec.owner must be the user creating the branch"},
		"another namespace's":     {b: branch("kube-system", "x", "coredns", "URL", 300), ns: "hc", want: "spec.target.namespace must be the branch's namespace (hc)"},
		"where she has no grants": {b: branch("shop", "x", "api", "URL", 300), ns: "shop", want: "forbidden"},
	} {
		if _, err := asAlice.MirrordV1alpha1().MirrordDBBranches(tc.ns).Create(ctx, tc.b, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}

	// A branch the Default makes: its pod and Service.
	b, err := asAlice.MirrordV1alpha1().MirrordDBBranches("hc").Create(ctx, branch("hc", "team", "web", "DATABASE_URL", 300), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	podName := naming.DBBranch(b.UID)
	var pod *corev1.Pod
	waitFor(t, "the branch's pod and Service", func(ctx context.Context) error {
		if pod, err = s.Kube.CoreV1().Pods("hc").Get(ctx, podName, metav1.GetOptions{}); err != nil {
			return err
		}
		_, err := s.Kube.CoreV1().Services("hc").Get(ctx, podName, metav1.GetOptions{})
		return err
	})
	db := pod.Spec.Containers[0]
	env := map[string]corev1.EnvVar{}
	for _, e := range db.Env {
		env[e.Name] = e
	}
	if ref := env["DATABASE_URL"].ValueFrom; ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != "db" || env[dbbranch.EnvURL].Value != "$(DATABASE_URL)" {
		t.Errorf("the branch's environment %+v: want the target's Secret reference and %s=$(DATABASE_URL)", db.Env, dbbranch.EnvURL)
	}
	if db.Image != "docker.io/library/postgres:16" || !slices.Equal(db.Command[1:3], []string{"db-branch", "serve"}) || pod.Spec.InitContainers[0].Image != "mirrord.local/kubectl-mirrord:dev" {
		t.Errorf("the branch's containers: db %s %q, init %s", db.Image, db.Command, pod.Spec.InitContainers[0].Image)
	}
	if sc := pod.Spec.SecurityContext; sc == nil || !*sc.RunAsNonRoot || len(pod.OwnerReferences) != 1 || pod.OwnerReferences[0].UID != b.UID {
		t.Errorf("the branch's pod: security %+v, owners %+v", sc, pod.OwnerReferences)
	}
	waitFor(t, "the branch Pending, seeding", func(ctx context.Context) error {
		got, err := state(b.Name)
		if err == nil && (got.Status.Phase != mirrordv1alpha1.DBBranchPending || got.Status.Reason != mirrordv1alpha1.ReasonBranchSeeding) {
			err = fmt.Errorf("%s %s: %s", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		return err
	})
	// The seeding fails, as the kubelet would say: the branch fails with the tool's words, and
	// its pod and Service go.
	pod.Status = corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: "db",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: `copy the schema: pg_dump: error: connection to server at "db" failed`}}}}}
	if _, err := s.Kube.CoreV1().Pods("hc").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the branch Failed, nothing left", func(ctx context.Context) error {
		got, err := state(b.Name)
		if err != nil {
			return err
		}
		if got.Status.Phase != mirrordv1alpha1.DBBranchFailed || !strings.Contains(got.Status.Message, "pg_dump: error: connection to server") {
			return fmt.Errorf("%s: %s", got.Status.Phase, got.Status.Message)
		}
		return gone(ctx, s, podName)
	})

	// A variable the target lacks: Failed at once, no pod.
	b, err = asAlice.MirrordV1alpha1().MirrordDBBranches("hc").Create(ctx, branch("hc", "nope", "web", "NO_SUCH_URL", 300), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a branch without a source Failed", func(ctx context.Context) error {
		got, err := state(b.Name)
		if err == nil && (got.Status.Reason != mirrordv1alpha1.ReasonBranchSourceUnknown || !strings.Contains(got.Status.Message, "has no variable NO_SUCH_URL")) {
			err = fmt.Errorf("%s %s: %s", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		return err
	})
	if err := gone(ctx, s, naming.DBBranch(b.UID)); err != nil {
		t.Error(err)
	}

	// A policy of the target's namespace that forbids whole copies: a branch copying every
	// row fails, and makes nothing.
	if _, err := s.Mirrord.MirrordV1alpha1().MirrordPolicies("hc").Create(ctx, &mirrordv1alpha1.MirrordPolicy{ObjectMeta: metav1.ObjectMeta{Name: "no-full-copies"},
		Spec: mirrordv1alpha1.PolicySpec{TargetPath: "deploy/web", Block: []mirrordv1alpha1.BlockedFeature{mirrordv1alpha1.BlockDBBranchesAll}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	full := branch("hc", "full", "web", "DATABASE_URL", 300)
	full.Spec.Copy.Mode = mirrordv1alpha1.DBCopyAll
	b, err = asAlice.MirrordV1alpha1().MirrordDBBranches("hc").Create(ctx, full, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a whole copy refused by policy", func(ctx context.Context) error {
		got, err := state(b.Name)
		if err == nil && (got.Status.Reason != mirrordv1alpha1.ReasonBlockedByPolicy || !strings.Contains(got.Status.Message, "MirrordPolicy hc/no-full-copies")) {
			err = fmt.Errorf("%s %s: %s", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		return err
	})
	if err := gone(ctx, s, naming.DBBranch(b.UID)); err != nil {
		t.Error(err)
	}

	// No session uses it: the Primary deletes it after its TTL, and its pod and Service go.
	short := branch("hc", "short", "web", "DATABASE_URL", 1)
	short.Spec.CreationTimeoutSeconds = 1
	b, err = asAlice.MirrordV1alpha1().MirrordDBBranches("hc").Create(ctx, short, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an unused branch deleted after its TTL, with its pod and Service", func(ctx context.Context) error {
		if _, err := state(b.Name); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the branch is still there (%v)", err)
		}
		return gone(ctx, s, naming.DBBranch(b.UID))
	})
}

// gone says whether a branch's pod and Service of this name are gone from hc.
func gone(ctx context.Context, s *Server, name string) error {
	if _, err := s.Kube.CoreV1().Pods("hc").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		return fmt.Errorf("pod %s is still there (%v)", name, err)
	}
	if _, err := s.Kube.CoreV1().Services("hc").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		return fmt.Errorf("service %s is still there (%v)", name, err)
	}
	return nil
}
