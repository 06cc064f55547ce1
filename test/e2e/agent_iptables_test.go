//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/manager"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

// TestAgentStealsWithIPTables runs an installation whose agents steal with legacy iptables,
// as on nodes without nftables owned tables (Linux < 5.12). The agent finds its target
// through the node's CRI socket, steals a header-filtered request, and when its process is
// killed (SIGKILL, as the OOM killer kills) its supervisor removes its rules.
func TestAgentStealsWithIPTables(t *testing.T) {
	f := framework.New(t)
	c := f.Clusters[0]
	ctx := f.Context(5 * time.Minute)
	f.InstallAlone(ctx, c)
	// The next tests get the installation as the overlay has it.
	t.Cleanup(func() {
		ctx := context.Background()
		f.InstallAlone(ctx, c)
		f.Eventually(ctx, 60*time.Second, "the leader is an unpatched replica", func(ctx context.Context) error {
			return leaderArgs(ctx, c, "--agent-steal-backend=iptables-legacy", false)
		})
	})
	patch := `[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--agent-steal-backend=iptables-legacy"}]`
	if out, err := f.Kubectl(c, "-n", controllerNS, "patch", "deploy/mirrord-controller", "--type=json", "-p", patch); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := f.Kubectl(c, "-n", controllerNS, "rollout", "status", "deploy/mirrord-controller", "--timeout=120s"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// The rollout can end before the old replicas are gone and have handed over the Lease:
	// an old leader would still make nftables agents.
	f.Eventually(ctx, 60*time.Second, "the leader is a patched replica", func(ctx context.Context) error {
		return leaderArgs(ctx, c, "--agent-steal-backend=iptables-legacy", true)
	})
	ns := f.Namespace(c)
	deployWithConfig(ctx, t, f, c, ns)
	target := targetPod(ctx, t, c, ns)
	targetPIDs, err := framework.PodProcesses(target)
	if err != nil {
		t.Fatal(err)
	}
	rules := func() string {
		out, err := exec.Command("nsenter", "-t", strconv.Itoa(targetPIDs[0]), "-n", "iptables-legacy", "-t", "nat", "-S").CombinedOutput()
		if err != nil {
			t.Fatalf("iptables-legacy in the target's namespace: %v: %s", err, out)
		}
		return string(out)
	}

	_, out, name := startSession(t, f, ns, "-t", "deploy/api", "--steal", "--http-header-filter", "^X-User: alice$", "--ports", "8080")
	if _, err := out.WaitFor(ctx, "ready; heartbeating", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	ag := agentOf(ctx, t, f, c, ns, name)
	cl, err := ag.dial(ag.key)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sub, err := cl.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			_, st, err := sub.Accept()
			if err != nil {
				return
			}
			go answerLocally(st)
		}
	}()
	addr := net.JoinHostPort(target.Status.PodIP, "8080")
	if got := getRaw(t, addr, "/alice", map[string]string{"X-User": "alice"}); !strings.Contains(got, "answered locally: /alice") {
		t.Errorf("alice's request was not stolen: %q", got)
	}
	if got := getRaw(t, addr, "/bob", map[string]string{"X-User": "bob"}); !strings.Contains(got, `"path":"/bob"`) {
		t.Errorf("bob's request did not reach the target: %q", got)
	}
	if r := rules(); !strings.Contains(r, "-N MIRRORD-STEAL-01") {
		t.Fatalf("no iptables-legacy chain in the target's namespace:\n%s", r)
	}
	if tables, err := framework.NetnsTables(target); err != nil || len(stealTables(tables)) != 0 {
		t.Errorf("nftables tables in the target's namespace: %v %v", tables, err)
	}

	// By the Job's UID, as the member finds them: a Job's name comes back with a new Job.
	job, err := c.Kube.BatchV1().Jobs(controllerNS).Get(ctx, ag.Job, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	agentPods, err := c.Kube.CoreV1().Pods(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: batchv1.ControllerUidLabel + "=" + string(job.UID)})
	if err != nil || len(agentPods.Items) != 1 {
		t.Fatalf("agent pods of %s: %v %v", ag.Job, agentPods, err)
	}
	agentPod := &agentPods.Items[0]
	logs, _ := f.Kubectl(c, "-n", controllerNS, "logs", agentPod.Name)
	for _, want := range []string{`"Steal backend" backend="iptables-legacy"`, `"Target located"`, `how="CRI /proc/`} {
		if !strings.Contains(logs, want) {
			t.Errorf("agent log lacks %s:\n%s", want, logs)
		}
	}

	// Kill the agent itself, not its supervisor (the container's first process).
	pids, err := framework.PodProcesses(agentPod)
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, pid := range pids {
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if strings.Contains(string(env), "MIRRORD_AGENT_SUPERVISED=1") {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed++
		}
	}
	if killed != 1 || len(pids) != 2 {
		t.Fatalf("the agent pod's processes %v: want a supervisor and one agent, killed %d", pids, killed)
	}
	// The supervisor removes the rules at once; the Job then starts a new agent, which
	// steals again, so look for the moment in between.
	start := time.Now()
	for strings.Contains(rules(), "MIRRORD-STEAL") {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("rules left 5s after the agent's SIGKILL:\n%s", rules())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the killed agent's rules were gone after %s", time.Since(start).Round(time.Millisecond))
}

// answerLocally answers a stolen request on a session stream as the developer's process
// would.
func answerLocally(st io.ReadWriteCloser) {
	defer st.Close()
	req, err := http.ReadRequest(bufio.NewReader(st))
	if err != nil {
		return
	}
	body := "answered locally: " + req.URL.Path
	fmt.Fprintf(st, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}

// leaderArgs is nil when every controller pod runs with arg (without it, when with is
// false) and one of them holds the Lease.
func leaderArgs(ctx context.Context, c *framework.Cluster, arg string, with bool) error {
	l, err := c.Kube.CoordinationV1().Leases(controllerNS).Get(ctx, manager.LeaseName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	pods, err := c.Kube.CoreV1().Pods(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: mirrordv1alpha1.LabelComponent + "=controller"})
	if err != nil {
		return err
	}
	holder := ptrString(l.Spec.HolderIdentity)
	leads := false
	for _, p := range pods.Items {
		if slices.Contains(p.Spec.Containers[0].Args, arg) != with {
			return fmt.Errorf("pod %s: %s in its arguments is %v", p.Name, arg, !with)
		}
		leads = leads || p.Name == holder
	}
	if !leads {
		return fmt.Errorf("the Lease is held by %q, not one of the current pods", holder)
	}
	return nil
}
