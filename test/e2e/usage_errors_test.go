//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
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
		{"unknown kind", []string{"-n", ns, "-t", "route/api"}, []string{`unknown kind "route"`}},
		{"a cron job that is not there", []string{"-n", ns, "-t", "cronjob/api"}, []string{"cronjob/api not found in namespace " + ns + " in any workload cluster"}},
		{"invalid regex", []string{"-n", ns, "-t", "deploy/api", "--steal", "--http-path-filter", "(unclosed"}, []string{`--http-path-filter "(unclosed": not a valid regular expression`}},
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

	t.Run("a session name already in use", func(t *testing.T) {
		out, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "sessions", "create", "--detach", "--name", "taken", "-t", "deploy/api", "--session-ttl", "60")
		if err != nil {
			t.Fatalf("sessions create --name taken: %v\n%s", err, out)
		}
		defer func() { _, _ = f.RunPlugin(context.Background(), f.Clusters[0], "-n", ns, "sessions", "kill", "taken") }()
		before, err := getSession(ctx, f, ns, "taken")
		if err != nil {
			t.Fatal(err)
		}
		out, err = f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "exec", "--name", "taken", "-t", "deploy/api", "--", "true")
		if err == nil || !strings.Contains(out, "session "+ns+"/taken already exists") || !strings.Contains(out, "pick another --name") {
			t.Errorf("exec with a name in use (%v):\n%s", err, out)
		}
		// The session that had the name is untouched.
		after, err := getSession(ctx, f, ns, "taken")
		if err != nil || after.UID != before.UID || after.DeletionTimestamp != nil {
			t.Errorf("the existing session was disturbed: %v", err)
		}
		if out, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "exec", "--name", "Not_A_Name", "-t", "deploy/api", "--", "true"); err == nil || !strings.Contains(out, `--name "Not_A_Name"`) {
			t.Errorf("exec with an invalid name (%v):\n%s", err, out)
		}
	})

	t.Run("a member cluster with bad credentials", func(t *testing.T) {
		primary, c3 := f.Clusters[0], f.Clusters[2]
		secrets := primary.Kube.CoreV1().Secrets(controllerNS)
		secret, err := secrets.Get(ctx, "mirrord-cluster-"+c3.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		good := secret.DeepCopy()
		secret.Data["token"] = []byte("not-a-token")
		if _, err := secrets.Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			cur, err := secrets.Get(context.Background(), good.Name, metav1.GetOptions{})
			if err == nil {
				cur.Data = good.Data
				_, err = secrets.Update(context.Background(), cur, metav1.UpdateOptions{})
			}
			if err != nil {
				t.Errorf("restoring %s's credentials: %v", c3.Name, err)
			}
		}()
		f.Eventually(ctx, 60*time.Second, "c3 reported unreachable", func(ctx context.Context) error {
			out, err := f.RunPlugin(ctx, primary, "status")
			if err != nil || !regexp.MustCompile(`(?m)^\s+c3\s.*False.*credentials rejected`).MatchString(out) {
				return fmt.Errorf("status (%v):\n%s", err, out)
			}
			return nil
		})
		// A session still runs where it can, and says which member it is missing and why.
		out, err := f.RunPlugin(ctx, primary, "-n", ns, "exec", "--timeout", "30s", "-t", "deploy/api", "--", "sh", "-c", "echo CLUSTER_NAME=$CLUSTER_NAME")
		if err != nil || !strings.Contains(out, "CLUSTER_NAME=c2") {
			t.Errorf("exec with c3 away (%v):\n%s", err, out)
		}
		if !regexp.MustCompile(`going on without c3 \(credentials rejected .*register the cluster again\)`).MatchString(out) {
			t.Errorf("exec does not say it goes on without c3, whose credentials are rejected:\n%s", out)
		}
	})
}
