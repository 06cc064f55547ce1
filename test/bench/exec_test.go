//go:build bench

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mirrord/kubectl-mirrord/test/bench/report"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

// TestBenchExec measures what a developer feels of `kubectl mirrord exec`, each against a
// baseline measured in the same run:
//   - exec to the command running with every agent ready, 3 clusters against 1 (topology A
//     against the single-cluster install), warm;
//   - one stolen HTTP request's round trip (header-filtered steal, keep-alive client) against
//     the same request through `kubectl port-forward` to a twin of the target, interleaved;
//   - bulk download by the command from a Service of the Default cluster (outgoing) against
//     the same download through `kubectl port-forward` to the twin.
func TestBenchExec(t *testing.T) {
	f := framework.New(t)
	f.RequireClusters(3)
	reps := envInt(t, "MIRRORD_BENCH_COUNT", 5)
	ctx := f.Context(30 * time.Minute)
	c1 := f.Clusters[0]
	echo := buildEcho(t)

	f.InstallAlone(ctx, c1)
	ns := f.SharedNamespace(f.Clusters...)
	for _, c := range f.Clusters {
		f.EchoApp(ctx, c, ns, "api", 1)
	}
	// The baselines' port-forwards go to a twin of the target that no session touches.
	f.EchoApp(ctx, c1, ns, "twin", 1)

	one := startups(ctx, t, f, ns, reps)
	rtt, pfRTT := roundTrips(ctx, t, f, ns, echo)
	bulk, pfBulk := downloads(ctx, t, f, ns, echo, 3)

	// Topology A: c1 Primary+Workload+Default, c2 and c3 Workloads.
	for _, c := range f.Clusters[1:] {
		f.Install(ctx, c, "workload")
		if out, err := f.RunPlugin(ctx, c1, "cluster", "register", c.Name, "--member-kubeconfig", c.Kubeconfig, "--server", c.InternalServer, "--workload"); err != nil {
			t.Fatalf("registering %s: %v\n%s", c.Name, err, out)
		}
	}
	t.Cleanup(func() { _, _ = f.Kubectl(c1, "delete", "mirrordclusters", "--all", "--wait=true") })
	three := startups(ctx, t, f, ns, reps)
	// What this machine allows: the rig runs the three clusters' nodes on the same CPUs, so
	// three pods starting at once (one per cluster) take longer than one, whatever the
	// controller does.
	bareOne := podStarts(ctx, t, f, f.Clusters[:1], ns, reps)
	bareThree := podStarts(ctx, t, f, f.Clusters, ns, reps)

	startOne := report.Row{Name: "exec to command running, 1 cluster (warm)", Unit: "s", Samples: one}
	startOne.AtMost(2)
	startThree := report.Row{Name: "exec to command running, 3 clusters (warm)", Unit: "s", Samples: three,
		Baseline: "the same, 1 cluster", BaselineSamples: one}
	startThree.RatioAtMost(1.3)
	steal := report.Row{Name: "stolen HTTP request round trip (header filter, keep-alive)", Unit: "ms", Samples: rtt,
		Baseline: "same request, kubectl port-forward to a twin pod", BaselineSamples: pfRTT}
	steal.RatioAtMost(1.2)
	out := report.Row{Name: "outgoing bulk download by the command (64 MiB)", Unit: "MiB/s", Samples: bulk,
		Baseline: "same download through kubectl port-forward", BaselineSamples: pfBulk}
	out.RatioAtLeast(0.8)
	bare := report.Row{Name: "bare Job to container running, one in each of 3 clusters at once", Unit: "s", Samples: bareThree,
		Baseline: "the same, 1 cluster", BaselineSamples: bareOne}
	report.Record(t, startOne, startThree, bare, steal, out)
}

// buildEcho builds the sample app for this machine: the local server and client.
func buildEcho(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "echo")
	cmd := exec.Command("go", "build", "-o", bin, "./test/images/echo")
	cmd.Dir = framework.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the echo sample: %v\n%s", err, out)
	}
	return bin
}

// startups runs `exec -- sh -c 'echo started'` reps times (after one warm-up) and returns the
// seconds from starting exec to the command's first output.
func startups(ctx context.Context, t *testing.T, f *framework.Framework, ns string, reps int) []float64 {
	var out []float64
	for i := range reps + 1 {
		start := time.Now()
		cmd, buf := f.StartPlugin(f.Clusters[0], "-n", ns, "exec", "-q", "-t", "deploy/api", "--incoming", "off", "--", "sh", "-c", "echo started; exec sleep 60")
		if _, err := buf.WaitFor(ctx, "started", 2*time.Minute); err != nil {
			t.Fatalf("exec: %v\n%s", err, buf.String())
		}
		d := time.Since(start)
		stop(cmd)
		time.Sleep(2 * time.Second) // the last session's agents go away, as between a developer's runs
		if i > 0 {
			out = append(out, d.Seconds())
		}
		t.Logf("exec to running: %s", d)
	}
	return out
}

// podStarts starts, reps times (after one warm-up), one Job of the sample server in each of
// clusters at once, each on the node of that cluster's target pod as an agent would be, and
// returns the seconds until the last one's container runs (the member controller then
// probes an agent itself).
func podStarts(ctx context.Context, t *testing.T, f *framework.Framework, clusters []*framework.Cluster, ns string, reps int) []float64 {
	var out []float64
	for i := range reps + 1 {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, len(clusters))
		for _, c := range clusters {
			wg.Go(func() { errs <- startBareJob(ctx, f, c, ns, fmt.Sprintf("bare-start-%d", i)) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		d := time.Since(start)
		for _, c := range clusters {
			if err := c.Kube.BatchV1().Jobs(ns).Delete(ctx, fmt.Sprintf("bare-start-%d", i), metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Second)
		if i > 0 {
			out = append(out, d.Seconds())
		}
		t.Logf("%d bare Jobs to running: %s", len(clusters), d)
	}
	return out
}

// startBareJob creates Job name on c's target node and waits until its container runs.
func startBareJob(ctx context.Context, f *framework.Framework, c *framework.Cluster, ns, name string) error {
	pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
	if err != nil || len(pods.Items) == 0 {
		return fmt.Errorf("%s: no target pod to put the Job beside (%v)", c.Name, err)
	}
	node := pods.Items[0].Spec.NodeName
	job := sampleServerJob(f, name, node)
	job.Spec.BackoffLimit = ptr.To[int32](0)
	job.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	// Watched, not polled: three pollers listing every 20 ms would load the machine they
	// measure.
	w, err := c.Kube.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "job-name=" + name})
	if err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	defer w.Stop()
	if _, err := c.Kube.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	for e := range w.ResultChan() {
		if p, ok := e.Object.(*corev1.Pod); ok {
			for _, cs := range p.Status.ContainerStatuses {
				if cs.State.Running != nil {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("%s: the watch of Job %s's pod ended before its container ran", c.Name, name)
}

// sampleServerJob is a Job of the sample server shaped as an agent Job is: pinned to node,
// in the host PID namespace, with no service-account token and the agent's requests (a
// token volume alone makes the kubelet wait for its volume manager, 300 ms here). Callers
// add their labels, probe and limits.
func sampleServerJob(f *framework.Framework, name, node string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{
					NodeName: node, RestartPolicy: corev1.RestartPolicyNever,
					HostPID:                      true,
					AutomountServiceAccountToken: ptr.To(false),
					EnableServiceLinks:           ptr.To(false),
					Containers: []corev1.Container{{
						Name: "server", Image: f.SampleImage, ImagePullPolicy: corev1.PullNever,
						Args: []string{"serve", "-addr", ":8080"},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
						},
					}},
				},
			},
		},
	}
}

// stop interrupts a plugin process as Ctrl-C would and waits for it.
func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// portForward runs kubectl port-forward to the target pod and returns the local address.
func portForward(ctx context.Context, t *testing.T, f *framework.Framework, c *framework.Cluster, ns, pod string) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.CommandContext(ctx, f.KubectlPath, "--kubeconfig", c.Kubeconfig, "-n", ns, "port-forward", "pod/"+pod, fmt.Sprintf("%d:8080", port))
	buf := &framework.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := buf.WaitFor(ctx, "Forwarding from", 30*time.Second); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("port-forward: %v\n%s", err, buf.String())
	}
	return fmt.Sprintf("127.0.0.1:%d", port), func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
}

// targetPod is the one pod of the Deployment app in ns.
func targetPod(ctx context.Context, t *testing.T, c *framework.Cluster, ns, app string) (name, ip string) {
	pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of %s: %d %v", app, len(pods.Items), err)
	}
	return pods.Items[0].Name, pods.Items[0].Status.PodIP
}

// The round trips: rounds of perRound requests each way, after warmUp requests each way that
// open the connections.
const (
	rounds   = 10
	perRound = 30
	warmUp   = 10
)

var noKeepAlive = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// keepAlive is a client that sends every request on one connection.
func keepAlive() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
}

// timeRequests sends n GETs with header through client to addr and returns each round trip
// in milliseconds; every answer must come from want's cluster.
func timeRequests(t *testing.T, client *http.Client, addr string, header map[string]string, want string, n int) []float64 {
	var ms []float64
	for i := range n {
		req, _ := http.NewRequest("GET", "http://"+addr+"/rtt", nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		var r struct{ Cluster string }
		if err != nil || json.Unmarshal(body, &r) != nil || r.Cluster != want {
			t.Fatalf("request %d to %s: %s %q (%v), want an answer from %q", i, addr, resp.Status, body, err, want)
		}
		ms = append(ms, float64(d.Microseconds())/1000)
	}
	return ms
}

// roundTrips measures a stolen request against the same request through kubectl
// port-forward to a twin of the target: an identical pod on the same node that the session
// leaves alone (port-forward to the target itself would pass through the agent, which takes
// the port's connections from the pod's loopback too). The two alternate in rounds on
// connections kept open, so the machine's drift weighs on both alike and a run's ratio
// compares like with like.
func roundTrips(ctx context.Context, t *testing.T, f *framework.Framework, ns, echo string) (stolen, forwarded []float64) {
	c := f.Clusters[0]
	twin, _ := targetPod(ctx, t, c, ns, "twin")
	_, ip := targetPod(ctx, t, c, ns, "api")
	forwardedAddr, closePF := portForward(ctx, t, f, c, ns, twin)
	defer closePF()

	cmd, buf := f.StartPlugin(c, "-n", ns, "exec", "-t", "deploy/api", "--steal", "--ports", "8080",
		"--http-header-filter", "^X-Bench: 1$", "--env-override", "CLUSTER_NAME=local", "--", echo, "serve", "-addr", "127.0.0.1:8080")
	defer stop(cmd)
	if _, err := buf.WaitFor(ctx, "running ", 2*time.Minute); err != nil {
		t.Fatalf("exec: %v\n%s", err, buf.String())
	}
	target := net.JoinHostPort(ip, "8080")
	// "running" is printed as the command starts, before it listens: wait for its answer.
	f.Eventually(ctx, 30*time.Second, "the local server answering stolen requests", func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+"/ping", nil)
		req.Header.Set("X-Bench", "1")
		resp, err := noKeepAlive.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var r struct{ Cluster string }
		if json.Unmarshal(body, &r) != nil || r.Cluster != "local" {
			return fmt.Errorf("%s %q", resp.Status, body)
		}
		return nil
	})
	viaSession, viaForward := keepAlive(), keepAlive()
	defer viaSession.CloseIdleConnections()
	defer viaForward.CloseIdleConnections()
	bench := map[string]string{"X-Bench": "1"}
	steal := func(n int) []float64 { return timeRequests(t, viaSession, target, bench, "local", n) }
	forward := func(n int) []float64 { return timeRequests(t, viaForward, forwardedAddr, nil, c.Name, n) }
	steal(warmUp)
	forward(warmUp)
	for i := range rounds {
		if i%2 == 0 {
			stolen = append(stolen, steal(perRound)...)
			forwarded = append(forwarded, forward(perRound)...)
		} else {
			forwarded = append(forwarded, forward(perRound)...)
			stolen = append(stolen, steal(perRound)...)
		}
	}
	t.Logf("round trip, median: stolen %.3f ms, port-forward to the twin %.3f ms", report.Median(stolen), report.Median(forwarded))
	return stolen, forwarded
}

var bytesRE = regexp.MustCompile(`bytes (\d+) seconds ([0-9.]+)`)

const bulkBytes = 64 << 20

// downloads measures the command's download from the Default cluster's Service against the
// same download through port-forward, in MiB/s.
func downloads(ctx context.Context, t *testing.T, f *framework.Framework, ns, echo string, reps int) (outgoing, forwarded []float64) {
	c := f.Clusters[0]
	twin, _ := targetPod(ctx, t, c, ns, "twin")
	url := fmt.Sprintf("/bytes/%d", bulkBytes)
	parse := func(out string) float64 {
		m := bytesRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no throughput in:\n%s", out)
		}
		n, _ := strconv.ParseFloat(m[1], 64)
		s, _ := strconv.ParseFloat(m[2], 64)
		if n != bulkBytes {
			t.Fatalf("downloaded %v bytes, want %d", n, bulkBytes)
		}
		return n / (1 << 20) / s
	}
	for range reps {
		addr, closePF := portForward(ctx, t, f, c, ns, twin)
		out, err := exec.CommandContext(ctx, echo, "get", "-discard", "http://"+addr+url).CombinedOutput()
		closePF()
		if err != nil {
			t.Fatalf("download through port-forward: %v\n%s", err, out)
		}
		forwarded = append(forwarded, parse(string(out)))

		out2, err := f.RunPlugin(ctx, c, "-n", ns, "exec", "-q", "-t", "deploy/api", "--incoming", "off", "--", echo, "get", "-discard", "http://api:8080"+url)
		if err != nil {
			t.Fatalf("download through the session: %v\n%s", err, out2)
		}
		outgoing = append(outgoing, parse(out2))
	}
	t.Logf("MiB/s: outgoing %v; port-forward %v", outgoing, forwarded)
	return outgoing, forwarded
}
