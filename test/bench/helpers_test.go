//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
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

var labelRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

// counters sums the samples of metric name in Prometheus text raw by the values of keys
// (joined with " "): apiserver_request_total by verb and resource, say.
func counters(raw []byte, name string, keys ...string) map[string]float64 {
	out := map[string]float64{}
	s := bufio.NewScanner(bytes.NewReader(raw))
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labelText, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			continue
		}
		labels := map[string]string{}
		for _, m := range labelRE.FindAllStringSubmatch(labelText, -1) {
			labels[m[1]] = m[2]
		}
		var k []string
		for _, key := range keys {
			k = append(k, labels[key])
		}
		out[strings.Join(k, " ")] += v
	}
	return out
}

// pathCounts is what the control path did, read from the API server's and the controller's
// metrics: API requests that write, by verb and resource, and reconciles by controller.
type pathCounts struct{ writes, reconciles map[string]float64 }

func readPathCounts(ctx context.Context, c *framework.Cluster) (pathCounts, error) {
	raw, err := c.Kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return pathCounts{}, fmt.Errorf("the API server's metrics: %w", err)
	}
	writes := counters(raw, "apiserver_request_total", "verb", "resource", "subresource")
	for k := range writes {
		if v, _, _ := strings.Cut(k, " "); v != "POST" && v != "PUT" && v != "PATCH" && v != "DELETE" {
			delete(writes, k)
		}
	}
	p, err := runningController(ctx, c)
	if err != nil {
		return pathCounts{}, err
	}
	raw, err = c.Kube.CoreV1().Pods(controllerNS).ProxyGet("http", p.Name, "8080", "/metrics", nil).DoRaw(ctx)
	if err != nil {
		return pathCounts{}, fmt.Errorf("metrics of %s: %w", p.Name, err)
	}
	return pathCounts{writes: writes, reconciles: counters(raw, "kubectl_mirrord_reconcile_total", "controller")}, nil
}

// writeCount is how many API writes were made between before and p.
func (p pathCounts) writeCount(before pathCounts) int {
	total := 0.0
	for k, v := range p.writes {
		total += v - before.writes[k]
	}
	return int(total)
}

// since describes what happened between before and p, per session of n: the busiest
// counters first.
func (p pathCounts) since(before pathCounts, n int) string {
	var b strings.Builder
	for _, part := range []struct {
		what      string
		now, then map[string]float64
	}{{"API writes", p.writes, before.writes}, {"reconciles", p.reconciles, before.reconciles}} {
		type kv struct {
			k string
			v float64
		}
		var all []kv
		total := 0.0
		for k, v := range part.now {
			if d := v - part.then[k]; d > 0 {
				all = append(all, kv{strings.TrimSpace(k), d})
				total += d
			}
		}
		slices.SortFunc(all, func(a, b kv) int { return cmp.Compare(b.v, a.v) })
		fmt.Fprintf(&b, "%s: %.0f (%.1f per session)", part.what, total, total/float64(n))
		for i, e := range all {
			if i == 8 {
				break
			}
			fmt.Fprintf(&b, "; %s %.0f", e.k, e.v)
		}
		b.WriteString("\n")
	}
	return b.String()
}
