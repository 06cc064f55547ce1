//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

// testWhoMayTargetWhat: RBAC on the Primary bounds every session, in every cluster, for
// users impersonated as an admin would grant them (README, "Security model"):
//   - alice has mirrord-user in ns only;
//   - bob has the sessions part of mirrord-user in ns and the mirrord verb on deploy/api only.
func testWhoMayTargetWhat(t *testing.T, f *framework.Framework, ns string) {
	ctx := f.Context(4 * time.Minute)
	primary := f.Clusters[0]
	f.EchoApp(ctx, f.Clusters[1], ns, "web", 1)
	for _, args := range [][]string{
		{"create", "rolebinding", "alice-mirrord", "--clusterrole=mirrord-user", "--user=alice"},
		{"create", "rolebinding", "bob-sessions", "--clusterrole=mirrord-user-sessions", "--user=bob"},
		{"create", "role", "mirrord-api", "--verb=mirrord", "--resource=deployments.apps", "--resource-name=api"},
		{"create", "rolebinding", "bob-api", "--role=mirrord-api", "--user=bob"},
	} {
		if out, err := f.Kubectl(primary, append([]string{"-n", ns}, args...)...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}

	t.Run("a user of one namespace cannot target another, not even by hand", func(t *testing.T) {
		cfg := rest.CopyConfig(primary.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: "alice"}
		alice, err := versionedFor(cfg)
		if err != nil {
			t.Fatal(err)
		}
		forged := &mirrordv1alpha1.MirrordSession{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "coredns-"},
			Spec: mirrordv1alpha1.MirrordSessionSpec{
				Owner: "alice", OwnerGroups: []string{"system:authenticated"}, TTLSeconds: 5,
				Target: mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: "coredns", Namespace: "kube-system"},
			},
		}
		_, err = alice.MirrordV1alpha1().MirrordSessions(ns).Create(ctx, forged, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "spec.target.namespace must be the session's namespace ("+ns+"), not kube-system") {
			t.Fatalf("alice targeting kube-system from %s: err = %v, want the admission policy's rule", ns, err)
		}
		// Her own namespace works, through the CLI as she would run it.
		out, err := f.RunPlugin(ctx, primary, "--as", "alice", "-n", ns, "sessions", "create", "-t", "deploy/web", "--detach", "--session-ttl", "5", "--timeout", "60s")
		if err != nil {
			t.Fatalf("alice's session on deploy/web of %s: %v\n%s", ns, err, out)
		}
	})

	t.Run("a user granted one deployment may target it and not its neighbour", func(t *testing.T) {
		out, err := f.RunPlugin(ctx, primary, "--as", "bob", "-n", ns, "sessions", "create", "-t", "deploy/web", "--detach", "--timeout", "60s")
		if err == nil || !strings.Contains(out, `the Primary refused the session: bob may not run sessions on deployment/web in namespace `+ns+`: an admin grants the "mirrord" verb on deployments.apps`) {
			t.Fatalf("bob on deploy/web: want the admission policy's refusal, got %v:\n%s", err, out)
		}
		out, err = f.RunPlugin(ctx, primary, "--as", "bob", "-n", ns, "sessions", "create", "-t", "deploy/api", "--detach", "--session-ttl", "5", "--timeout", "60s")
		if err != nil {
			t.Fatalf("bob on deploy/api: %v\n%s", err, out)
		}
	})

	t.Run("ls shows each user what they may target, and nothing else", func(t *testing.T) {
		lines := func(user string) []string {
			out, err := f.RunPlugin(ctx, primary, "--as", user, "-n", ns, "ls", "-o", "name")
			if err != nil {
				t.Fatalf("ls as %s: %v\n%s", user, err, out)
			}
			var paths []string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if strings.Contains(l, "/") && !strings.HasPrefix(l, "mirrord:") {
					paths = append(paths, l)
				}
			}
			return paths
		}
		if got := lines("alice"); !slices.Contains(got, "deployment/web") || !slices.Contains(got, "deployment/api") {
			t.Errorf("alice (mirrord-user in %s) sees %q, want deployment/web and deployment/api among them", ns, got)
		}
		if got := lines("bob"); !slices.Equal(got, []string{"deployment/api"}) {
			t.Errorf("bob (the mirrord verb on deployment/api alone) sees %q, want exactly deployment/api", got)
		}
		out, err := f.RunPlugin(ctx, primary, "--as", "carol", "-n", ns, "ls")
		if err == nil || !strings.Contains(out, "not allowed to create mirrordtargetqueries") {
			t.Errorf("carol, with no grant: %v, want RBAC's refusal explained\n%s", err, out)
		}
	})

	// An admin may create sessions in kube-system on the Primary; the members still refuse.
	t.Run("members refuse a target in kube-system even when the Primary asks", func(t *testing.T) {
		out, err := f.RunPlugin(ctx, primary, "-n", "kube-system", "sessions", "create", "-t", "deploy/coredns", "--timeout", "60s")
		if err == nil || !strings.Contains(out, "namespace kube-system is excluded from sessions in this cluster by its admin") {
			t.Fatalf("want the members' refusal, got %v:\n%s", err, out)
		}
		// Nothing ran there.
		for _, c := range f.Clusters[1:] {
			jobs, err := c.Kube.BatchV1().Jobs(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: mirrordv1alpha1.LabelComponent + "=" + mirrordv1alpha1.ComponentAgent})
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range jobs.Items {
				if strings.Contains(j.Annotations[mirrordv1alpha1.GroupName+"/target-pod"], "coredns") {
					t.Errorf("%s: agent Job %s for CoreDNS", c.Name, j.Name)
				}
			}
		}
	})
	f.Eventually(context.Background(), 30*time.Second, "alice's and bob's detached sessions expired", func(ctx context.Context) error {
		list, err := primary.Mirrord.MirrordV1alpha1().MirrordSessions(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, s := range list.Items {
			if s.Spec.Owner == "alice" || s.Spec.Owner == "bob" {
				return fmt.Errorf("session %s of %s still there", s.Name, s.Spec.Owner)
			}
		}
		return nil
	})
}
