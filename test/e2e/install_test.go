//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

// TestInstallUninstall: the admin's commands on a real cluster, as a new admin would use them.
// `kubectl mirrord install` (InstallAlone) brings up a controller that runs a session;
// `uninstall` refuses while the session runs, --force ends it, and then nothing of
// kubectl-mirrord is left: no namespace (with its agent Jobs and pods), CRD, ClusterRole or
// admission policy. The test installs again at the end for the tests after it.
func TestInstallUninstall(t *testing.T) {
	f := framework.New(t)
	c := f.Clusters[0]
	ctx := f.Context(6 * time.Minute)
	f.InstallAlone(ctx, c)
	ns := f.Namespace(c)
	deployWithConfig(ctx, t, f, c, ns)
	cmd, out, name := startSession(t, f, ns, "-t", "deploy/api")
	if _, err := out.WaitFor(ctx, "ready; heartbeating", 90*time.Second); err != nil {
		t.Fatal(err)
	}

	refused, err := f.RunPlugin(ctx, c, "uninstall")
	if err == nil || !strings.Contains(refused, "1 sessions are running (mirrordsession "+ns+"/"+name+")") || !strings.Contains(refused, "--force") {
		t.Fatalf("uninstall with a session running: %v\n%s", err, refused)
	}
	if _, err := c.Kube.CoreV1().Namespaces().Get(ctx, controllerNS, metav1.GetOptions{}); err != nil {
		t.Fatalf("a refused uninstall touched the install: %v", err)
	}

	progress := f.Uninstall(ctx, c)
	t.Logf("uninstall --force:\n%s", progress)
	if _, err := out.WaitFor(ctx, "ended", 60*time.Second); err != nil {
		t.Errorf("the session's command did not see its session end: %v", err)
	}
	_ = cmd.Wait()
	if _, err := c.Kube.CoreV1().Namespaces().Get(ctx, controllerNS, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s: %v, want it gone", controllerNS, err)
	}
	for _, check := range []struct {
		what string
		args []string
	}{
		{"CRDs", []string{"get", "crd", "-o", "name"}},
		{"ClusterRoles and bindings", []string{"get", "clusterroles,clusterrolebindings", "-l", "app.kubernetes.io/name=kubectl-mirrord", "-o", "name"}},
		{"admission policies", []string{"get", "validatingadmissionpolicies,validatingadmissionpolicybindings", "-o", "name"}},
		{"pods anywhere", []string{"get", "pods", "-A", "-l", "kubectl-mirrord.io/component", "-o", "name"}},
	} {
		got, err := f.Kubectl(c, check.args...)
		if err != nil {
			t.Errorf("%s: %v\n%s", check.what, err, got)
			continue
		}
		for _, l := range strings.Fields(got) {
			if strings.Contains(l, "mirrord") {
				t.Errorf("%s left behind: %s", check.what, l)
			}
		}
	}
	if _, err := f.Kubectl(c, "get", "mirrordsessions", "-A"); err == nil {
		t.Error("mirrordsessions are still served after uninstall")
	}

	f.InstallAlone(ctx, c)
	f.Eventually(ctx, time.Minute, "mirrordsessions served again after the reinstall", func(context.Context) error {
		if out, err := f.Kubectl(c, "get", "mirrordsessions", "-A"); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
}
