//go:build bench

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/session"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/bench/report"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

// TestBenchSessions creates N sessions at once (default 200) on one cluster with every role,
// each targeting the same one-pod deployment, and times them from the first create to all
// Ready: every child joined to the pod's one shared agent, running and ready. The baseline is
// the same cluster starting N bare Jobs of a small HTTP server with the same readiness probe:
// what an agent per session would cost in Kubernetes alone. It also reports the controller's
// peak resident memory (VmHWM) against its idle memory.
func TestBenchSessions(t *testing.T) {
	f := framework.New(t)
	f.RequireClusters(1)
	// Creates go out at once, as from many users: no client-side throttling of the burst.
	c := fastClient(t, f.Clusters[0])
	n := envInt(t, "MIRRORD_BENCH_SESSIONS", 200)
	reps := envInt(t, "MIRRORD_BENCH_COUNT", 3)
	ctx := f.Context(time.Duration(reps) * 15 * time.Minute)

	if os.Getenv("MIRRORD_BENCH_NO_INSTALL") == "" {
		f.InstallAlone(ctx, c)
	}
	// Its peak memory counts from its start: not the load run's.
	restartController(t, f, c)
	ns := f.Namespace(c)
	f.EchoApp(ctx, c, ns, "api", 1)
	pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("target pods: %v %v", len(pods.Items), err)
	}
	node := pods.Items[0].Spec.NodeName
	owner, err := session.Whoami(ctx, c.Kube)
	if err != nil {
		t.Fatal(err)
	}
	idle, err := controllerMetric(ctx, c, "process_resident_memory_bytes")
	if err != nil {
		t.Fatal(err)
	}

	var sessions, bare, api []float64
	for i := range reps {
		if os.Getenv("MIRRORD_BENCH_SESSIONS_ONLY") == "" { // set to compare builds quickly
			d := bareJobs(ctx, t, f, c, ns, node, n)
			bare = append(bare, d.Seconds())
			t.Logf("run %d: %d bare Jobs ready in %s", i+1, n, d)
		}
		d, writes, size := readySessions(ctx, t, c, ns, owner, n)
		sessions = append(sessions, d.Seconds())
		t.Logf("run %d: %d sessions Ready in %s", i+1, n, d)
		if writes > 0 {
			d = apiWrites(ctx, t, c, ns, n, writes, size)
			api = append(api, d.Seconds())
			t.Logf("run %d: the API server alone took %s for %d writes of %d-byte objects by %d clients", i+1, d, writes, size, n)
		}
	}
	peak, err := controllerMetric(ctx, c, "kubectl_mirrord_process_peak_resident_memory_bytes")
	if err != nil {
		t.Fatal(err)
	}

	ready := report.Row{Name: fmt.Sprintf("%d sessions at once: created to all Ready", n), Unit: "s", Samples: sessions,
		Baseline: fmt.Sprintf("%d bare Jobs to all ready", n), BaselineSamples: bare}
	ready.AtMost(60)
	vsAPI := report.Row{Name: fmt.Sprintf("%d sessions at once: created to all Ready", n), Unit: "s", Samples: sessions,
		Baseline: "the API server alone: as many writes of objects that size, as many clients", BaselineSamples: api}
	vsAPI.RatioAtMost(2)
	mem := report.Row{Name: fmt.Sprintf("controller peak memory, %d sessions", n), Unit: "MiB", Samples: []float64{peak / (1 << 20)},
		Baseline: "controller idle memory", BaselineSamples: []float64{idle / (1 << 20)}}
	mem.AtMost(150)
	// A missed target shows as "NO" in the table; hack/bench.sh fails the run for it.
	report.Record(t, ready, vsAPI, mem)
}

// readySessions creates n sessions at once and returns the time until all are Ready, the API
// writes that took (0 when the metrics were not readable) and a session's size in JSON; then
// it deletes them and waits until their agents are gone.
func readySessions(ctx context.Context, t *testing.T, c *framework.Cluster, ns string, owner session.Owner, n int) (took time.Duration, writes, size int) {
	spec := mirrordv1alpha1.MirrordSessionSpec{
		Target: mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: "api", Namespace: ns},
		// Long enough that the benchmark need not heartbeat.
		TTLSeconds: 3600,
	}
	owner.Own(&spec)
	before, err := readPathCounts(ctx, c)
	if err != nil {
		t.Logf("control path counts: %v", err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if _, err := session.Create(ctx, c.Mirrord, ns, "", spec); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating sessions: %v", err)
	}
	sessions := c.Mirrord.MirrordV1alpha1().MirrordSessions(ns)
	var last string
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := sessions.List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		byPhase := map[mirrordv1alpha1.SessionPhase]int{}
		for _, s := range l.Items {
			byPhase[s.Status.Phase]++
			if s.Status.Phase == mirrordv1alpha1.SessionFailed {
				return false, fmt.Errorf("session %s failed: %+v", s.Name, s.Status.Conditions)
			}
		}
		last = fmt.Sprint(byPhase)
		return byPhase[mirrordv1alpha1.SessionReady] == n, nil
	})
	took = time.Since(start)
	if err != nil {
		t.Fatalf("%d sessions not Ready: %v (phases %s)", n, err, last)
	}
	logBreakdown(ctx, t, c, controllerNS, "kubectl-mirrord.io/component=agent", start)
	if after, err := readPathCounts(ctx, c); err == nil && before.writes != nil {
		t.Logf("control path to all Ready, %d sessions:\n%s", n, after.since(before, n))
		writes = after.writeCount(before)
	}
	var childReady, parentReady []float64
	if l, err := sessions.List(ctx, metav1.ListOptions{}); err == nil {
		if len(l.Items) > 0 {
			b, _ := json.Marshal(l.Items[0])
			size = len(b)
		}
		for _, s := range l.Items {
			if cnd := meta.FindStatusCondition(s.Status.Conditions, mirrordv1alpha1.ConditionReady); cnd != nil && cnd.Status == metav1.ConditionTrue {
				parentReady = append(parentReady, cnd.LastTransitionTime.Sub(start).Seconds())
			}
		}
	}
	if l, err := c.Mirrord.MirrordV1alpha1().MirrordClusterSessions(controllerNS).List(ctx, metav1.ListOptions{}); err == nil {
		for _, s := range l.Items {
			if cnd := meta.FindStatusCondition(s.Status.Conditions, mirrordv1alpha1.ConditionReady); cnd != nil && cnd.Status == metav1.ConditionTrue {
				childReady = append(childReady, cnd.LastTransitionTime.Sub(start).Seconds())
			}
		}
	}
	t.Logf("children Ready %s; sessions Ready %s", quantiles(childReady), quantiles(parentReady))
	if err := sessions.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(ctx, t, c, controllerNS, "kubectl-mirrord.io/component=agent")
	return took, writes, size
}

// apiWrites is the API server's own time for what the sessions' control path wrote: n clients
// at once, each creating a ConfigMap of size bytes and updating it until writes are made in
// all, with nothing else in between. The ConfigMaps go afterwards.
func apiWrites(ctx context.Context, t *testing.T, c *framework.Cluster, ns string, n, writes, size int) time.Duration {
	const label = "bench=api-writes"
	cms := c.Kube.CoreV1().ConfigMaps(ns)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		mine := writes / n
		if i < writes%n {
			mine++
		}
		wg.Go(func() {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("api-writes-%d", i), Labels: map[string]string{"bench": "api-writes"}},
				Data: map[string]string{"status": strings.Repeat("x", size)}}
			got, err := cms.Create(ctx, cm, metav1.CreateOptions{})
			for k := 1; err == nil && k < mine; k++ {
				got.Data["status"] = strings.Repeat(string(rune('a'+k%26)), size)
				got, err = cms.Update(ctx, got, metav1.UpdateOptions{})
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatalf("API writes: %v", err)
	}
	if err := cms.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: label}); err != nil {
		t.Fatal(err)
	}
	return took
}

// bareJobs starts n Jobs of the sample server on node, each with a readiness probe like an
// agent's, and returns the time until all their pods are ready; then it removes them.
func bareJobs(ctx context.Context, t *testing.T, f *framework.Framework, c *framework.Cluster, ns, node string, n int) time.Duration {
	const label = "bench=bare-job"
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			job := sampleServerJob(f, fmt.Sprintf("bare-%d", i), node)
			job.Labels = map[string]string{"bench": "bare-job"}
			job.Spec.BackoffLimit = ptr.To[int32](3)
			job.Spec.Template.Labels = map[string]string{"bench": "bare-job"}
			job.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](5)
			job.Spec.Template.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
				PeriodSeconds: 1,
			}
			_, err := c.Kube.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating Jobs: %v", err)
	}
	var ready int
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := c.Kube.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: label})
		if err != nil {
			return false, nil
		}
		ready = 0
		for _, j := range l.Items {
			if ptr.Deref(j.Status.Ready, 0) == 1 {
				ready++
			}
		}
		return ready == n, nil
	})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("%d bare Jobs not ready (%d are): %v", n, ready, err)
	}
	logBreakdown(ctx, t, c, ns, label, start)
	if err := c.Kube.BatchV1().Jobs(ns).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)},
		metav1.ListOptions{LabelSelector: label}); err != nil {
		t.Fatal(err)
	}
	waitGone(ctx, t, c, ns, label)
	return took
}

// waitGone waits until no pod matching selector is left in ns.
func waitGone(ctx context.Context, t *testing.T, c *framework.Cluster, ns, selector string) {
	t.Helper()
	var left int
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, nil
		}
		left = len(l.Items)
		return left == 0, nil
	})
	if err != nil {
		t.Fatalf("%d pods %s in %s still there: %v", left, selector, ns, err)
	}
}

// logBreakdown logs when the last pod matching selector was created, started its container
// and became ready, counted from start: where the time went.
func logBreakdown(ctx context.Context, t *testing.T, c *framework.Cluster, ns, selector string, start time.Time) {
	pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Logf("breakdown: %v", err)
		return
	}
	var created, started, ready []float64
	for _, p := range pods.Items {
		created = append(created, p.CreationTimestamp.Sub(start).Seconds())
		for _, s := range p.Status.ContainerStatuses {
			if s.State.Running != nil {
				started = append(started, s.State.Running.StartedAt.Sub(start).Seconds())
			}
		}
		for _, cnd := range p.Status.Conditions {
			if cnd.Type == corev1.PodReady && cnd.Status == corev1.ConditionTrue {
				ready = append(ready, cnd.LastTransitionTime.Sub(start).Seconds())
			}
		}
	}
	q := quantiles
	t.Logf("%d pods %s: created %s; container started %s; ready %s", len(pods.Items), selector, q(created), q(started), q(ready))
}

// quantiles summarises seconds as their median and maximum.
func quantiles(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	slices.Sort(xs)
	return fmt.Sprintf("median %.1fs last %.1fs", xs[len(xs)/2], xs[len(xs)-1])
}
