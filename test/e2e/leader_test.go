//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/manager"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

// TestControllerLeaderElection runs two controller replicas on one cluster with every role:
// exactly one leads and reconciles; when the leader goes, the other takes over and a live
// session keeps following its target.
func TestControllerLeaderElection(t *testing.T) {
	f := framework.New(t)
	c := f.Clusters[0]
	ctx := f.Context(5 * time.Minute)
	f.InstallAlone(ctx, c)
	t.Cleanup(func() { _, _ = f.Kubectl(c, "-n", controllerNS, "scale", "deploy/mirrord-controller", "--replicas=1") })
	if out, err := f.Kubectl(c, "-n", controllerNS, "scale", "deploy/mirrord-controller", "--replicas=2"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := f.Kubectl(c, "-n", controllerNS, "rollout", "status", "deploy/mirrord-controller", "--timeout=90s"); err != nil {
		t.Fatalf("both replicas ready (a standby is ready too): %v: %s", err, out)
	}

	var leader, standby string
	f.Eventually(ctx, 30*time.Second, "exactly one leader", func(ctx context.Context) error {
		var err error
		leader, standby, err = leaders(ctx, c)
		return err
	})
	t.Logf("leader %s, standby %s", leader, standby)

	ns := f.Namespace(c)
	f.EchoApp(ctx, c, ns, "api", 1)
	_, out, name := startSession(t, f, ns, "-t", "deploy/api")
	if _, err := out.WaitFor(ctx, "ready; heartbeating", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	// Only the leader reconciled it.
	for pod, want := range map[string]bool{leader: true, standby: false} {
		n, err := podMetric(ctx, c, pod, `kubectl_mirrord_reconcile_total{controller="primary",result="requeue"}`)
		if err != nil && want {
			t.Fatal(err)
		}
		if (n > 0) != want {
			t.Errorf("%s reconciled sessions %v times; want reconciles only on the leader", pod, n)
		}
	}

	// The leader leaves (a rollout, a node drain): it releases the Lease and another replica
	// takes over: the standby, or the leader's replacement if it starts first.
	start := time.Now()
	if out, err := f.Kubectl(c, "-n", controllerNS, "delete", "pod", leader, "--wait=false"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var next string
	f.Eventually(ctx, 30*time.Second, "another replica leads", func(ctx context.Context) error {
		l, err := c.Kube.CoordinationV1().Leases(controllerNS).Get(ctx, manager.LeaseName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if next = ptrString(l.Spec.HolderIdentity); next == leader || next == "" {
			return fmt.Errorf("lease holder %q", next)
		}
		if v, err := podMetric(ctx, c, next, "kubectl_mirrord_leader"); err != nil || v != 1 {
			return fmt.Errorf("kubectl_mirrord_leader of %s = %v (%v)", next, v, err)
		}
		return nil
	})
	t.Logf("%s took over in %s", next, time.Since(start).Round(100*time.Millisecond))

	// The new leader reconciles the live session: a scale-up of the target gets an agent.
	waitPhase(t, f, ns, name, mirrordv1alpha1.SessionReady, "", 30*time.Second)
	if out, err := f.Kubectl(c, "-n", ns, "scale", "deploy/api", "--replicas=2"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	f.Eventually(ctx, 60*time.Second, "two ready agents after the takeover", func(ctx context.Context) error {
		s, err := getSession(ctx, f, ns, name)
		if err != nil {
			return err
		}
		if s.Status.Phase != mirrordv1alpha1.SessionReady || len(s.Status.Clusters) != 1 || s.Status.Clusters[0].ReadyAgents != 2 {
			return fmt.Errorf("phase %s clusters %+v", s.Status.Phase, s.Status.Clusters)
		}
		return nil
	})
}

// leaders returns the leading and the standby controller pods, and fails unless the Lease's
// holder is the only replica whose kubectl_mirrord_leader is 1.
func leaders(ctx context.Context, c *framework.Cluster) (leader, standby string, err error) {
	l, err := c.Kube.CoordinationV1().Leases(controllerNS).Get(ctx, manager.LeaseName, metav1.GetOptions{})
	if err != nil {
		return "", "", err
	}
	holder := ptrString(l.Spec.HolderIdentity)
	pods, err := c.Kube.CoreV1().Pods(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: mirrordv1alpha1.LabelComponent + "=controller"})
	if err != nil {
		return "", "", err
	}
	var running []string
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			running = append(running, p.Name)
		}
	}
	if len(running) != 2 {
		return "", "", fmt.Errorf("%d running replicas", len(running))
	}
	for _, p := range running {
		v, err := podMetric(ctx, c, p, "kubectl_mirrord_leader")
		if err != nil {
			return "", "", err
		}
		switch {
		case p == holder && v == 1:
			leader = p
		case p != holder && v == 0:
			standby = p
		default:
			return "", "", fmt.Errorf("lease holder %q but %s reports kubectl_mirrord_leader %v", holder, p, v)
		}
	}
	if leader == "" || standby == "" {
		return "", "", fmt.Errorf("lease holder %q is not one of %v", holder, running)
	}
	return leader, standby, nil
}

// podMetric reads one sample of a controller pod's /metrics (through the API server's pod
// proxy); series is the metric name with its labels as Prometheus prints them.
func podMetric(ctx context.Context, c *framework.Cluster, pod, series string) (float64, error) {
	raw, err := c.Kube.CoreV1().Pods(controllerNS).ProxyGet("http", pod, "8080", "/metrics", nil).DoRaw(ctx)
	if err != nil {
		return 0, fmt.Errorf("metrics of %s: %w", pod, err)
	}
	s := bufio.NewScanner(bytes.NewReader(raw))
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("%s has no %s", pod, series)
}

func ptrString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
