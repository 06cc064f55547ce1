//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

// faultServer is the local command of TestFaults: it answers stolen requests with
// "local PATH" and reaches the Default cluster's backend through the session every 300 ms,
// printing "out ok N ..." or "out err N ...".
const faultServer = `import http.server, threading, time, urllib.request
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("local " + self.path).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 8080), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
print("listening", flush=True)
n = 0
while True:
    n += 1
    try:
        body = urllib.request.urlopen("http://backend:8080/out-%d" % n, timeout=3).read().decode().strip()
        print("out ok %d %s" % (n, body), flush=True)
    except Exception as e:
        print("out err %d %s" % (n, e), flush=True)
    time.sleep(0.3)
`

// TestFaults is issue 7's proof under fire: one exec session (steal of the requests with
// "X-Fault: me" in c2 and c3, outgoing to the Default cluster in a loop) lives through each
// fault in turn while traffic flows. After each, the session must work again (its requests
// answered locally, outgoing through it) with nothing of the dead parts left behind, and
// the targets must have answered everyone else's requests throughout.
func TestFaults(t *testing.T) {
	if framework.Rig() == "" {
		t.Skip("needs the local rig (MIRRORD_E2E_RIG): it kills processes and stops API servers")
	}
	f := framework.New(t)
	f.RequireClusters(3)
	setUp(t, f, topologyB)
	ctx := f.Context(20 * time.Minute)
	c1, c2, c3 := f.Clusters[0], f.Clusters[1], f.Clusters[2]
	ns := f.SharedNamespace(f.Clusters...)
	f.EchoApp(ctx, c2, ns, "api", 1)
	f.EchoApp(ctx, c3, ns, "api", 1)
	f.EchoApp(ctx, c2, ns, "backend", 1)
	front := f.NewFront(c1)

	marker := filepath.Join(t.TempDir(), "pid")
	cli, out := f.StartPluginWith(front.Kubeconfig, "-n", ns, "exec", "-t", "deploy/api", "--steal", "--http-header-filter", "^X-Fault: me$", "--ports", "8080",
		"--", "sh", "-c", "echo $$ > "+marker+"; exec python3 -c '"+faultServer+"'")
	s := execSession(ctx, t, f, out, "\nlistening")
	tr := startTraffic(ctx, t, []*framework.Cluster{c2, c3}, ns)
	defer tr.stop()
	defer func() {
		if t.Failed() {
			t.Logf("exec's output:\n%s", out.String())
			return
		}
		// What a developer saw through all this: exec's own lines.
		var said []string
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(line, "mirrord: ") && !strings.HasPrefix(line, "mirrord: running ") {
				said = append(said, line)
			}
		}
		t.Logf("exec said:\n%s", strings.Join(said, "\n"))
	}()

	// healthy waits until the session works again in every cluster, then checks that nothing
	// the fault killed left anything behind.
	healthy := func(t *testing.T, what string, since time.Time) {
		t.Helper()
		took := f.Eventually(ctx, 90*time.Second, what+": the session works again", func(ctx context.Context) error {
			if err := checkAgents(ctx, f, topologyB, ns, s); err != nil {
				return err
			}
			for _, c := range []*framework.Cluster{c2, c3} {
				if err := stolenLocally(ctx, c, ns); err != nil {
					return err
				}
			}
			return outgoingSince(out.String(), since)
		})
		t.Logf("%s: working again %s later", what, took.Round(100*time.Millisecond))
		f.Eventually(ctx, 10*time.Second, what+": nothing left behind", func(ctx context.Context) error {
			return noStrays(ctx, f, ns, s)
		})
	}
	healthy(t, "start", time.Now())

	t.Run("kill -9 of an agent", func(t *testing.T) {
		target := targetPod(ctx, t, c3, ns)
		agent := agentPod(ctx, t, c3, s, target)
		mark := tr.mark()
		if err := framework.KillPod(agent); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		// The kernel removes the agent's table with its netlink socket: the target serves
		// everyone directly within a second.
		f.Eventually(ctx, 5*time.Second, "the dead agent's rules gone", func(context.Context) error {
			tables, err := framework.NetnsTables(target)
			if err != nil {
				return err
			}
			if steal := stealTables(tables); len(steal) > 0 {
				return fmt.Errorf("tables %v", steal)
			}
			return nil
		})
		t.Logf("target's rules gone %s after the kill", time.Since(killed).Round(10*time.Millisecond))
		healthy(t, "agent", killed)
		// Requests in flight through the agent at the kill may fail; none after.
		tr.check(t, mark, 3)
	})

	t.Run("kill -9 of a member's controller", func(t *testing.T) {
		mark := tr.mark()
		killed := killController(ctx, t, c2)
		healthy(t, "c2's controller", killed)
		tr.check(t, mark, 0)
	})

	t.Run("kill -9 of the Primary's controller", func(t *testing.T) {
		mark := tr.mark()
		killed := killController(ctx, t, c1)
		healthy(t, "the Primary's controller", killed)
		if !strings.Contains(out.String(), "reconnected to the session after") {
			t.Errorf("exec did not say it reconnected")
		}
		tr.check(t, mark, 0)
	})

	t.Run("a member's API server stopped and restarted", func(t *testing.T) {
		mark := tr.mark()
		// Its controller loses its leader lease meanwhile: it must campaign again, not exit
		// (an exit cuts the relay, and repeated ones put the pod into restart back-off).
		restartsBefore := controllerRestarts(ctx, t, c3)
		defer func() {
			if n := controllerRestarts(ctx, t, c3); n != restartsBefore {
				t.Errorf("c3's controller restarted %d times while its API server was away", n-restartsBefore)
			}
		}()
		start := f.StopAPIServer("c3")
		waitPhase(t, f, ns, s.Name, mirrordv1alpha1.SessionDegraded, "c3", 30*time.Second)
		// The Default cluster still serves the session meanwhile.
		f.Eventually(ctx, 15*time.Second, "outgoing while c3 is away", func(context.Context) error {
			return outgoingSince(out.String(), time.Now().Add(-2*time.Second))
		})
		start()
		restarted := time.Now()
		waitPhase(t, f, ns, s.Name, mirrordv1alpha1.SessionReady, "", 60*time.Second)
		healthy(t, "c3's API server", restarted)
		tr.check(t, mark, 0)
	})

	t.Run("the target's pod deleted and rescheduled", func(t *testing.T) {
		old := targetPod(ctx, t, c3, ns)
		if err := c3.Kube.CoreV1().Pods(ns).Delete(ctx, old.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		deleted := time.Now()
		f.Eventually(ctx, 60*time.Second, "a new target pod", func(ctx context.Context) error {
			if p := targetPodOrNil(ctx, c3, ns); p == nil || p.UID == old.UID || p.Status.PodIP == "" {
				return fmt.Errorf("no new pod yet")
			}
			return nil
		})
		healthy(t, "pod deleted", deleted)
	})

	t.Run("the target rolled out to a new version", func(t *testing.T) {
		old := targetPod(ctx, t, c2, ns)
		if _, err := f.Kubectl(c2, "-n", ns, "set", "env", "deploy/api", "VERSION=2"); err != nil {
			t.Fatal(err)
		}
		if out, err := f.Kubectl(c2, "-n", ns, "rollout", "status", "deploy/api", "--timeout=90s"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		rolled := time.Now()
		f.Eventually(ctx, 60*time.Second, "the old pod gone", func(ctx context.Context) error {
			if p := targetPodOrNil(ctx, c2, ns); p == nil || p.UID == old.UID {
				return fmt.Errorf("old pod still the target")
			}
			return nil
		})
		// c2 is the Default: outgoing moved to the new pod's agent.
		healthy(t, "rollout", rolled)
	})

	t.Run("the developer's network dropped for 10s", func(t *testing.T) {
		mark := tr.mark()
		front.Drop(10 * time.Second)
		dropped := time.Now()
		if _, err := out.WaitFor(ctx, "the connection to the session dropped", 20*time.Second); err != nil {
			t.Fatal(err)
		}
		healthy(t, "network", dropped.Add(10*time.Second))
		if n := strings.Count(out.String(), "reconnected to the session after"); n < 2 {
			t.Errorf("exec said it reconnected %d times, want 2 (the Primary's controller, the network)", n)
		}
		// The targets never depended on the session: everyone else's requests were answered,
		// also those that reached the agent's steal as it went away with the subscription
		// (its table keeps conntrack on until they are answered: steal.keepConntrack).
		tr.check(t, mark, 0)
	})

	t.Run("the developer's network flapping: five 3s cuts in 20s", func(t *testing.T) {
		// Most heartbeats fall into a cut: each failed one is retried within a second, so
		// the session outlives a network that is down most of the time for longer than its TTL.
		mark := tr.mark()
		for range 5 {
			front.Drop(3 * time.Second)
			time.Sleep(4 * time.Second)
		}
		healthy(t, "flapping network", time.Now())
		if _, err := getSession(ctx, f, ns, s.Name); err != nil {
			t.Fatalf("the session did not survive: %v", err)
		}
		tr.check(t, mark, 0)
	})

	t.Run("kill -9 of the CLI", func(t *testing.T) {
		pods := []*corev1.Pod{targetPod(ctx, t, c2, ns), targetPod(ctx, t, c3, ns)}
		took := killExecAndWaitGone(ctx, t, f, cli, s, marker, 45*time.Second, func(context.Context) error {
			for _, p := range pods {
				tables, err := framework.NetnsTables(p)
				if err != nil {
					return err
				}
				if steal := stealTables(tables); len(steal) > 0 {
					return fmt.Errorf("%s: tables %v", p.Name, steal)
				}
			}
			return nil
		})
		t.Logf("everything gone %s after kill -9 of the CLI (TTL 30s)", took.Round(100*time.Millisecond))
	})
}

// traffic sends everyone else's requests (no X-Fault header) to the target pods of clusters
// every 100 ms and records the failures: a target never depends on a session.
type traffic struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	sent     int
	failures []string // in order; mark() is an index into it
	// toGonePods counts the failed requests to a pod deleted meanwhile.
	toGonePods int
	stolen     []string // answered by the local process: never allowed
}

func startTraffic(ctx context.Context, t *testing.T, clusters []*framework.Cluster, ns string) *traffic {
	ctx, cancel := context.WithCancel(ctx)
	tr := &traffic{cancel: cancel, done: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	go func() {
		defer close(tr.done)
		addrs := map[string]string{}
		pods := map[string]*corev1.Pod{} // by cluster, the pod behind addrs
		refreshed := time.Time{}
		for n := 0; ctx.Err() == nil; n++ {
			if time.Since(refreshed) > time.Second {
				for _, c := range clusters {
					// Only a running, ready pod is a fair target: a deleted one is not the
					// session's fault.
					if p := targetPodOrNil(ctx, c, ns); p != nil {
						addrs[c.Name] = net.JoinHostPort(p.Status.PodIP, "8080")
						pods[c.Name] = p
					} else {
						delete(addrs, c.Name)
					}
				}
				refreshed = time.Now()
			}
			for cluster, addr := range addrs {
				path := fmt.Sprintf("/everyone-%d", n)
				body, err := getBody(ctx, client, addr, path, nil)
				// A pod deleted since the last look (a rollout, the pod-delete fault) stops
				// answering: not the session's fault.
				gone := err != nil && podGone(ctx, clusterByName(clusters, cluster), pods[cluster])
				tr.mu.Lock()
				tr.sent++
				switch {
				case ctx.Err() != nil:
				case gone:
					tr.toGonePods++
				case err != nil:
					tr.failures = append(tr.failures, fmt.Sprintf("%s %s %s: %v", time.Now().Format("15:04:05.000"), cluster, path, err))
				case strings.HasPrefix(body, "local "):
					tr.stolen = append(tr.stolen, cluster+" "+path)
				}
				tr.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return tr
}

func (tr *traffic) stop() {
	tr.cancel()
	<-tr.done
}

func (tr *traffic) mark() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.failures)
}

// check fails t when more than allowed requests failed since mark, or any unfiltered
// request was ever answered by the local process.
func (tr *traffic) check(t *testing.T, mark, allowed int) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	failed := tr.failures[mark:]
	t.Logf("traffic: %d requests so far (%d failed to a pod being deleted); %d failed during this fault", tr.sent, tr.toGonePods, len(failed))
	if len(failed) > allowed {
		t.Errorf("%d of everyone else's requests failed (at most %d allowed):\n%s", len(failed), allowed, strings.Join(failed, "\n"))
	}
	if len(tr.stolen) > 0 {
		t.Errorf("requests without the session's header were answered by the local process: %v", tr.stolen)
	}
}

func getBody(ctx context.Context, client *http.Client, addr, path string, headers map[string]string) (string, error) {
	// The connection's local address goes into errors: a packet capture can then be read
	// for it.
	local := "no connection"
	trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { local = ci.Conn.LocalAddr().String() }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, "http://"+addr+path, nil)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("from %s: %w", local, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, err = io.Copy(&b, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, b.String())
	}
	return strings.TrimSpace(b.String()), err
}

// stolenLocally is nil when a request with the session's header to c's target is answered
// by the local process.
func stolenLocally(ctx context.Context, c *framework.Cluster, ns string) error {
	p := targetPodOrNil(ctx, c, ns)
	if p == nil {
		return fmt.Errorf("%s: no ready target pod", c.Name)
	}
	body, err := getBody(ctx, noReuse, net.JoinHostPort(p.Status.PodIP, "8080"), "/mine", map[string]string{"X-Fault": "me"})
	if err != nil {
		return fmt.Errorf("%s: %v", c.Name, err)
	}
	if body != "local /mine" {
		return fmt.Errorf("%s: the session's request answered %q", c.Name, body)
	}
	return nil
}

var outRE = regexp.MustCompile(`(?m)^out (ok|err) (\d+) (.*)$`)

// outgoingSince is nil when the local command's outgoing request succeeded at least twice
// in a row after since (judged by line order: it prints every 300 ms and more).
func outgoingSince(out string, since time.Time) error {
	lines := outRE.FindAllStringSubmatch(out, -1)
	// 1 line per ~0.3 s: count back the lines printed since `since`.
	back := int(time.Since(since)/(300*time.Millisecond)) + 1
	if back > len(lines) {
		back = len(lines)
	}
	ok := 0
	for _, l := range lines[len(lines)-back:] {
		if l[1] == "ok" && strings.Contains(l[3], `"cluster":"c2"`) {
			ok++
			if ok >= 2 {
				return nil
			}
		} else {
			ok = 0
		}
	}
	last := "none"
	if len(lines) > 0 {
		last = lines[len(lines)-1][0]
	}
	return fmt.Errorf("no outgoing request through the session succeeded lately (last: %s)", last)
}

// targetPodOrNil is c's running, ready, not deleted target pod.
// podGone says whether p has been deleted, or is being deleted.
func podGone(ctx context.Context, c *framework.Cluster, p *corev1.Pod) bool {
	if c == nil || p == nil {
		return false
	}
	now, err := c.Kube.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	return apierrors.IsNotFound(err) || (err == nil && (now.UID != p.UID || now.DeletionTimestamp != nil))
}

func clusterByName(cs []*framework.Cluster, name string) *framework.Cluster {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func targetPodOrNil(ctx context.Context, c *framework.Cluster, ns string) *corev1.Pod {
	pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
	if err != nil {
		return nil
	}
	for i, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && podReady(&p) {
			return &pods.Items[i]
		}
	}
	return nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func targetPod(ctx context.Context, t *testing.T, c *framework.Cluster, ns string) *corev1.Pod {
	t.Helper()
	p := targetPodOrNil(ctx, c, ns)
	if p == nil {
		t.Fatalf("%s: no ready target pod", c.Name)
	}
	return p
}

// childOf is the name of session s's child in c.
func childOf(ctx context.Context, c *framework.Cluster, s *mirrordv1alpha1.MirrordSession) (string, error) {
	mcs, err := c.Mirrord.MirrordV1alpha1().MirrordClusterSessions(controllerNS).List(ctx, metav1.ListOptions{
		LabelSelector: labels.Set{mirrordv1alpha1.LabelParentUID: string(s.UID)}.String()})
	if err != nil {
		return "", err
	}
	if len(mcs.Items) != 1 {
		return "", fmt.Errorf("%s: %d children of session %s", c.Name, len(mcs.Items), s.Name)
	}
	return mcs.Items[0].Name, nil
}

// agentPod is the running agent of session s for target in c.
func agentPod(ctx context.Context, t *testing.T, c *framework.Cluster, s *mirrordv1alpha1.MirrordSession, target *corev1.Pod) *corev1.Pod {
	t.Helper()
	child, err := childOf(ctx, c, s)
	if err != nil {
		t.Fatal(err)
	}
	pods, err := agentPods(ctx, c, child)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pods {
		if p.Labels[mirrordv1alpha1.LabelTargetPodUID] == string(target.UID) && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			return &pods[i]
		}
	}
	t.Fatalf("%s: no running agent for %s", c.Name, target.Name)
	return nil
}

// killController kill -9s the leading controller of c and returns when. A controller that
// has restarted before (an earlier test killed it) is replaced first: kubelet holds back each
// further restart of a container (10 s, 20 s, 40 s, ...), and a test would measure that
// backoff, long enough to outlast a session's TTL, instead of the product's recovery.
func killController(ctx context.Context, t *testing.T, c *framework.Cluster) time.Time {
	t.Helper()
	pods := freshControllers(ctx, t, c)
	killed := 0
	for i := range pods {
		if err := framework.KillPod(&pods[i]); err != nil {
			t.Fatal(err)
		}
		killed++
	}
	if killed == 0 {
		t.Fatalf("%s: no running controller", c.Name)
	}
	return time.Now()
}

// freshControllers returns c's running controller pods once none of them has restarted,
// deleting those that have (their Deployment makes new ones).
func freshControllers(ctx context.Context, t *testing.T, c *framework.Cluster) []corev1.Pod {
	t.Helper()
	var running []corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := c.Kube.CoreV1().Pods(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: mirrordv1alpha1.LabelComponent + "=controller"})
		if err != nil {
			return false, nil
		}
		running = running[:0]
		settled := true
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp != nil {
				settled = false
				continue
			}
			if restarts(p) > 0 {
				if err := c.Kube.CoreV1().Pods(controllerNS).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					return false, err
				}
				settled = false
				continue
			}
			if p.Status.Phase != corev1.PodRunning || !podReady(p) {
				settled = false
				continue
			}
			running = append(running, *p)
		}
		return settled && len(running) > 0, nil
	})
	if err != nil {
		t.Fatalf("%s: no running controller that has not restarted: %v", c.Name, err)
	}
	return running
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, cs := range p.Status.ContainerStatuses {
		n += cs.RestartCount
	}
	return n
}

// controllerRestarts is the restart count of c's controller containers.
func controllerRestarts(ctx context.Context, t *testing.T, c *framework.Cluster) int32 {
	t.Helper()
	pods, err := c.Kube.CoreV1().Pods(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: mirrordv1alpha1.LabelComponent + "=controller"})
	if err != nil {
		t.Fatal(err)
	}
	var n int32
	for i := range pods.Items {
		n += restarts(&pods.Items[i])
	}
	return n
}

// stealTables are the agents' tables among tables.
func stealTables(tables []string) []string {
	var out []string
	for _, tb := range tables {
		if strings.Contains(tb, "mirrord-steal-") {
			out = append(out, tb)
		}
	}
	return out
}

// noStrays is nil when every member holds exactly what the session needs now: one agent
// Job per live target pod (none for pods that are gone), and in each target's network at
// most one agent table (the live agent's).
func noStrays(ctx context.Context, f *framework.Framework, ns string, s *mirrordv1alpha1.MirrordSession) error {
	for _, c := range f.Clusters[1:] {
		pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
		if err != nil {
			return err
		}
		live := map[string]bool{}
		for i, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			live[string(p.UID)] = true
			tables, err := framework.NetnsTables(&pods.Items[i])
			if err != nil {
				return err
			}
			if steal := stealTables(tables); len(steal) > 1 {
				return fmt.Errorf("%s: %s has %d agent tables: %v", c.Name, p.Name, len(steal), steal)
			}
		}
		child, err := childOf(ctx, c, s)
		if err != nil {
			return err
		}
		jobs, err := agentJobs(ctx, c, child)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if uid := j.Labels[mirrordv1alpha1.LabelTargetPodUID]; !live[uid] && j.DeletionTimestamp == nil {
				return fmt.Errorf("%s: agent Job %s for target pod %s, which is gone", c.Name, j.Name, uid)
			}
		}
	}
	return nil
}
