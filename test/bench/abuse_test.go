//go:build bench

package bench

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/relay"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/bench/report"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

// floodConns is how many silent connections the abuse run's pod holds to each of the relay,
// the agent and the target's mirrored port.
const floodConns = 1000

// TestBenchAbuse is issue 19's abuse run: a pod holds 1,000 silent connections each to the
// controller's relay and to an agent (handshakes that never start) and 1,000 connections to
// the target's mirrored port that never send a byte, while a mirroring session with traffic
// runs on that agent. Compared with the same run without the flood: the session's mirrored
// requests and outgoing latency, and the memory of the controller and the agent, which must
// stay under their limits.
func TestBenchAbuse(t *testing.T) {
	f := framework.New(t)
	f.RequireClusters(1)
	c := fastClient(t, f.Clusters[0])
	ctx := f.Context(15 * time.Minute)
	ns, owner, target, backendAddr := loadSetup(ctx, t, f, c)
	ctl, err := runningController(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	relayAddr := net.JoinHostPort(ctl.Status.PodIP, strconv.Itoa(relay.Port))

	quiet := loadRun(ctx, t, f, c, ns, owner, 1, target, backendAddr)
	hits0 := limitHits(ctx, t, c)
	loud := loadRun(ctx, t, f, c, ns, owner, 1, target, backendAddr, func(agents []*corev1.Pod) {
		if len(agents) != 1 {
			t.Fatalf("%d agents, want 1", len(agents))
		}
		agentAddr := net.JoinHostPort(agents[0].Status.PodIP, strconv.Itoa(agentconfig.SessionPort))
		startFlood(ctx, t, f, c, ns, relayAddr, agentAddr, target)
	})
	hits1 := limitHits(ctx, t, c)
	t.Logf("limit hits at the controller during the flood: %v -> %v", hits0, hits1)

	name := func(what string) string {
		return fmt.Sprintf("abuse (%d silent connections each to the relay, the agent and the mirrored port): %s", floodConns, what)
	}
	delivered := report.Row{Name: name("mirrored requests delivered"), Unit: "%", Samples: []float64{loud.delivered},
		Baseline: "no flood", BaselineSamples: []float64{quiet.delivered}}
	delivered.AtLeast(100)
	latency := report.Row{Name: name("outgoing request latency p50"), Unit: "ms", Samples: loud.outgoing,
		Baseline: "no flood", BaselineSamples: quiet.outgoing}
	ctlMem := report.Row{Name: name("controller memory (RSS)"), Unit: "MiB", Samples: []float64{loud.controllerMiB},
		Baseline: "no flood", BaselineSamples: []float64{quiet.controllerMiB}}
	ctlMem.AtMost(512) // the controller's memory limit
	agentMem := report.Row{Name: name("agent private memory (RssAnon)"), Unit: "MiB", Samples: []float64{sum(loud.agentMiB)},
		Baseline: "no flood", BaselineSamples: []float64{sum(quiet.agentMiB)}}
	agentMem.AtMost(256) // the agent's memory limit
	report.Record(t, delivered, latency, ctlMem, agentMem)
}

// startFlood runs a pod holding floodConns silent connections to each address until the
// test ends, and waits until it has made them.
func startFlood(ctx context.Context, t *testing.T, f *framework.Framework, c *framework.Cluster, ns string, addrs ...string) {
	t.Helper()
	args := append([]string{"flood", "-conns", strconv.Itoa(floodConns), "-for", "10m"}, addrs...)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "flood", Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers: []corev1.Container{{
				Name: "flood", Image: f.SampleImage, ImagePullPolicy: corev1.PullNever, Args: args,
			}},
		},
	}
	if _, err := c.Kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Kube.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	})
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := c.Kube.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("the flood pod did not start: %v", err)
	}
	// Its connections open within seconds; the silent handshakes then time out and reopen
	// for the rest of the run.
	time.Sleep(10 * time.Second)
	out, _ := f.Kubectl(c, "-n", ns, "logs", pod.Name, "--tail", "1")
	t.Logf("flood: %s", out)
}

// limitHits reads the controller's kubectl_mirrord_limit_hits_total and handshakes refused.
func limitHits(ctx context.Context, t *testing.T, c *framework.Cluster) map[string]float64 {
	t.Helper()
	hits := map[string]float64{}
	for _, n := range protocol.LimitNames {
		v, err := controllerMetric(ctx, c, `kubectl_mirrord_limit_hits_total{limit="`+string(n)+`"}`)
		if err == nil {
			hits[string(n)] = v
		}
	}
	if v, err := controllerMetric(ctx, c, "kubectl_mirrord_relay_handshakes_refused_total"); err == nil {
		hits["relay_handshakes_refused"] = v
	}
	return hits
}
