//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"

	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

const controllerNS = "mirrord-system"

// envInt is an integer knob of the benchmarks (MIRRORD_BENCH_*), def when unset.
func envInt(t *testing.T, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", key, v)
	}
	return n
}

// fastClient is c with a client that is not rate limited on this side.
func fastClient(t *testing.T, c *framework.Cluster) *framework.Cluster {
	cfg := rest.CopyConfig(c.Config)
	cfg.QPS, cfg.Burst = 1000, 2000
	fast := *c
	fast.Config = cfg
	var err error
	if fast.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if fast.Mirrord, err = versioned.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return &fast
}

// controllerMetric reads one unlabelled metric of the controller pod in c through the API
// server's pod proxy.
func controllerMetric(ctx context.Context, c *framework.Cluster, name string) (float64, error) {
	p, err := runningController(ctx, c)
	if err != nil {
		return 0, err
	}
	raw, err := c.Kube.CoreV1().Pods(controllerNS).ProxyGet("http", p.Name, "8080", "/metrics", nil).DoRaw(ctx)
	if err != nil {
		return 0, fmt.Errorf("metrics of %s: %w", p.Name, err)
	}
	s := bufio.NewScanner(bytes.NewReader(raw))
	for s.Scan() {
		if f := strings.Fields(s.Text()); len(f) == 2 && f[0] == name {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	return 0, fmt.Errorf("metrics of %s lack %s", p.Name, name)
}

// runningController is c's running controller pod (not one going away after a restart).
func runningController(ctx context.Context, c *framework.Cluster) (*corev1.Pod, error) {
	pods, err := c.Kube.CoreV1().Pods(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: "kubectl-mirrord.io/component=controller"})
	if err != nil {
		return nil, err
	}
	for i, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && p.Status.PodIP != "" {
			return &pods.Items[i], nil
		}
	}
	return nil, fmt.Errorf("%s: no running controller pod", c.Name)
}

// restartController starts a fresh controller process in c: memory figures are the process's,
// and the benchmark before may have used the same one.
func restartController(t *testing.T, f *framework.Framework, c *framework.Cluster) {
	t.Helper()
	if out, err := f.Kubectl(c, "-n", controllerNS, "rollout", "restart", "deploy/mirrord-controller"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := f.Kubectl(c, "-n", controllerNS, "rollout", "status", "deploy/mirrord-controller", "--timeout=120s"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}
