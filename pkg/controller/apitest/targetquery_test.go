package apitest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/ls"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/credentials"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/relay"
	clisession "github.com/kubectl-mirrord/kubectl-mirrord/pkg/session"
)

func deployment(ns, name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
			},
		},
	}
}

// TestTargetQueries: `kubectl mirrord ls` as the CLI runs it (ls.Query) against the
// controller with every role: each user sees only the targets RBAC lets them run sessions on
// (a whole namespace, or one workload by name), cannot ask as someone else or where they have
// no grant, and leaves no query behind; a member's relay answers only its Primary.
func TestTargetQueries(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Install(t, "single-cluster")
	grantUsers(t, s)
	relayAddr := runController(t, s)
	ctx := t.Context()
	for _, d := range []*appsv1.Deployment{deployment("hc", "web"), deployment("shop", "api"), deployment("shop", "worker")} {
		if _, err := s.Kube.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// No controller-manager here: the pods' ServiceAccount is made by hand.
	if _, err := s.Kube.CoreV1().ServiceAccounts("hc").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	runningPod(t, s, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "hc"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web"}, {Name: "istio-proxy", Image: "proxy"}}}}, "containerd://1", "10.0.0.1", true)
	runningPod(t, s, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-2", Namespace: "hc"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web"}, {Name: "sidecar", Image: "s"}}}}, "containerd://2", "10.0.0.2", true)
	runningPod(t, s, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-3", Namespace: "hc"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web"}}}}, "containerd://3", "10.0.0.3", false)

	query := func(user, ns string, kinds ...mirrordv1alpha1.TargetKind) (mirrordv1alpha1.MirrordTargetQueryStatus, error) {
		cfg := s.Impersonate(user)
		c, err := versioned.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		kube, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		owner, err := clisession.Whoami(ctx, kube)
		if err != nil {
			t.Fatal(err)
		}
		return ls.Query(ctx, c, ns, owner, kinds, 30*time.Second)
	}
	paths := func(st mirrordv1alpha1.MirrordTargetQueryStatus) []string {
		var out []string
		for _, f := range st.Targets {
			out = append(out, f.Path)
			if !slices.Equal(f.Clusters, []string{"kind-single"}) && len(f.Clusters) != 1 {
				t.Errorf("%s is in clusters %v, want this one cluster", f.Path, f.Clusters)
			}
		}
		return out
	}
	for name, tc := range []struct {
		user, ns string
		kinds    []mirrordv1alpha1.TargetKind
		want     []string
		wantErr  string
	}{
		{user: alice, ns: "hc", want: []string{"deployment/web", "pod/web-1", "pod/web-2/container/sidecar", "pod/web-2/container/web"}},
		{user: alice, ns: "hc", kinds: []mirrordv1alpha1.TargetKind{mirrordv1alpha1.TargetKindPod}, want: []string{"pod/web-1", "pod/web-2/container/sidecar", "pod/web-2/container/web"}},
		// bob holds the mirrord verb on deployment api alone.
		{user: bob, ns: "shop", want: []string{"deployment/api"}},
		{user: alice, ns: "shop", wantErr: "forbidden"},
	} {
		st, err := query(tc.user, tc.ns, tc.kinds...)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("case %d: %s in %s: %v, want %q", name, tc.user, tc.ns, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("case %d: %s in %s: %v", name, tc.user, tc.ns, err)
		}
		if got := paths(st); !slices.Equal(got, tc.want) || st.Phase != mirrordv1alpha1.TargetQueryComplete {
			t.Errorf("case %d: %s in %s: %q (%s: %s), want %q", name, tc.user, tc.ns, got, st.Phase, st.Message, tc.want)
		}
	}

	// Nobody asks in another's name, nor changes what a query asks.
	asAlice, err := versioned.NewForConfig(s.Impersonate(alice))
	if err != nil {
		t.Fatal(err)
	}
	forged := &mirrordv1alpha1.MirrordTargetQuery{ObjectMeta: metav1.ObjectMeta{GenerateName: "ls-"},
		Spec: mirrordv1alpha1.MirrordTargetQuerySpec{Owner: bob, OwnerGroups: []string{"system:authenticated"}}}
	if _, err := asAlice.MirrordV1alpha1().MirrordTargetQueries("hc").Create(ctx, forged, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "spec.owner must be the user creating the query") {
		t.Errorf("alice asking as bob: %v, want admission's refusal", err)
	}
	forged.Spec.Owner, forged.Spec.OwnerGroups = alice, []string{"system:authenticated", "system:masters"}
	if _, err := asAlice.MirrordV1alpha1().MirrordTargetQueries("hc").Create(ctx, forged, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "spec.ownerGroups must be the groups") {
		t.Errorf("alice claiming system:masters: %v, want admission's refusal", err)
	}
	// Nor writes the answer herself.
	forged.Spec.OwnerGroups = []string{"system:authenticated"}
	q, err := asAlice.MirrordV1alpha1().MirrordTargetQueries("hc").Create(ctx, forged, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q.Status = mirrordv1alpha1.MirrordTargetQueryStatus{Phase: mirrordv1alpha1.TargetQueryComplete, Targets: []mirrordv1alpha1.FoundTarget{{Path: "deployment/x"}}}
	if _, err := asAlice.MirrordV1alpha1().MirrordTargetQueries("hc").UpdateStatus(ctx, q, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("alice writing a query's answer: %v, want forbidden", err)
	}
	q.Spec.Kinds = []mirrordv1alpha1.TargetKind{mirrordv1alpha1.TargetKindPod}
	if _, err := s.Mirrord.MirrordV1alpha1().MirrordTargetQueries("hc").Update(ctx, q, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "cannot change") {
		t.Errorf("changing a query's spec: %v, want admission's refusal", err)
	}
	if err := asAlice.MirrordV1alpha1().MirrordTargetQueries("hc").Delete(ctx, q.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Every query the CLI made is gone.
	waitFor(t, "no queries left", func(ctx context.Context) error {
		l, err := s.Mirrord.MirrordV1alpha1().MirrordTargetQueries("").List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) > 0 {
			err = fmt.Errorf("%d queries left, the first %s/%s", len(l.Items), l.Items[0].Namespace, l.Items[0].Name)
		}
		return err
	})

	// A member's relay answers a targets query from its Primary's account only.
	asPrimary, err := kubernetes.NewForConfig(s.Impersonate("system:serviceaccount:mirrord-system:"+mirrordv1alpha1.PrimaryServiceAccount,
		"system:serviceaccounts", "system:serviceaccounts:mirrord-system"))
	if err != nil {
		t.Fatal(err)
	}
	relayToken, _, _, err := credentials.RequestToken(ctx, asPrimary, "mirrord-system", credentials.RelayTokenLifetime, credentials.RelayAudience)
	if err != nil {
		t.Fatal(err)
	}
	direct := &rest.Config{Host: "https://" + relayAddr, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	ask := func(token string, q protocol.TargetsQuery) (protocol.TargetsAnswer, error) {
		conn, err := relay.Dial(ctx, direct, relay.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		sess, err := protocol.Dial(conn, protocol.Hello{Kind: protocol.HelloTargets, Session: "targets", Token: token, Targets: &q}, nil)
		if err != nil {
			return protocol.TargetsAnswer{}, err
		}
		defer sess.Close()
		st, err := sess.AcceptStream()
		if err != nil {
			return protocol.TargetsAnswer{}, err
		}
		var a protocol.TargetsAnswer
		err = protocol.ReadMessage(st, &a)
		return a, err
	}
	a, err := ask(relayToken, protocol.TargetsQuery{Namespace: "shop"})
	if err != nil || !slices.Equal(a.Targets, []string{"deployment/api", "deployment/worker"}) {
		t.Errorf("the Primary asking for shop's targets: %+v %v, want both deployments (RBAC is the Primary's to apply)", a, err)
	}
	if a, err := ask(relayToken, protocol.TargetsQuery{Namespace: "mirrord-system"}); err != nil || len(a.Targets) > 0 || !strings.Contains(a.Problem, "excludes namespace mirrord-system") {
		t.Errorf("the Primary asking for an excluded namespace: %+v %v, want no targets and why", a, err)
	}
	if _, err := ask("", protocol.TargetsQuery{Namespace: "shop"}); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Errorf("asking without a token: %v, want a refusal", err)
	}
	if _, err := ask(relayToken, protocol.TargetsQuery{Namespace: "../shop"}); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Errorf("asking for a namespace that is not one: %v, want a refusal", err)
	}
}
