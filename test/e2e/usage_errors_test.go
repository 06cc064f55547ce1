//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

// TestBadInput: each mistake a user makes gets an error that says what is wrong and what to
// do, and leaves nothing behind in any cluster (topology B).
func TestBadInput(t *testing.T) {
	f := framework.New(t)
	f.RequireClusters(3)
	setUp(t, f, topologyB)
	ctx := f.Context(10 * time.Minute)
	ns := f.SharedNamespace(f.Clusters...)
	f.EchoApp(ctx, f.Clusters[1], ns, "api", 1)
	f.EchoApp(ctx, f.Clusters[1], ns, "idle", 0) // scaled to zero
	malformed := filepath.Join(t.TempDir(), "mirrord.yaml")
	if err := os.WriteFile(malformed, []byte("target: deploy/api\nfeature:\n  network: [incoming\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string // exec's, before -- true
		want []string
	}{
		{"unknown target", []string{"-n", ns, "-t", "deploy/nope"}, []string{"deployment/nope not found in namespace " + ns + " in any workload cluster"}},
		{"a target with no pods", []string{"-n", ns, "-t", "deploy/idle"}, []string{"deployment/idle has no pods in any workload cluster (c2)", "scale it up"}},
		{"unknown container", []string{"-n", ns, "-t", "deploy/api", "-c", "nope"}, []string{`container "nope" not found`, "it has: app"}},
		{"unknown kind", []string{"-n", ns, "-t", "cronjob/api"}, []string{`unknown kind "cronjob"`}},
		{"invalid regex", []string{"-n", ns, "-t", "deploy/api", "--steal", "--http-path-filter", "(unclosed"}, []string{`--http-path-filter "(unclosed" is not a valid regular expression`}},
		{"port out of range", []string{"-n", ns, "-t", "deploy/api", "--ports", "70000"}, []string{"--ports 70000: ports are 1 to 65535"}},
		{"malformed config file", []string{"-n", ns, "-f", malformed}, []string{"config file " + malformed, "not valid YAML"}},
		{"a namespace the Primary lacks", []string{"-n", "no-such-namespace", "-t", "deploy/api"}, []string{"namespace no-such-namespace does not exist on the Primary"}},
		{"a user without RBAC", []string{"--as", "system:serviceaccount:" + ns + ":nobody", "-n", ns, "-t", "deploy/api"}, []string{"not allowed to create sessions in namespace " + ns, "mirrord-user"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"exec", "--timeout", "60s"}, tc.args...), "--", "true")
			out, err := f.RunPlugin(ctx, f.Clusters[0], args...)
			if err == nil {
				t.Fatalf("kubectl mirrord %s succeeded:\n%s", strings.Join(args, " "), out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("the error does not say %q:\n%s", w, out)
				}
			}
			// Whatever it created is gone: the session, its children and agent Jobs.
			f.Eventually(ctx, 30*time.Second, "nothing left", func(ctx context.Context) error {
				list, err := f.Clusters[0].Mirrord.MirrordV1alpha1().MirrordSessions(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					return err
				}
				for _, s := range list.Items {
					return fmt.Errorf("session %s left (%s)", s.Name, s.Status.Phase)
				}
				for _, c := range f.Clusters[1:] {
					jobs, err := c.Kube.BatchV1().Jobs(controllerNS).List(ctx, metav1.ListOptions{})
					if err != nil {
						return err
					}
					if len(jobs.Items) > 0 {
						return fmt.Errorf("%s: %d agent Jobs left", c.Name, len(jobs.Items))
					}
				}
				return nil
			})
		})
	}
}
