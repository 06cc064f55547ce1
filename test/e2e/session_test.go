//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/manager"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/session"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

const controllerNS = "mirrord-system"

var createdRE = regexp.MustCompile(`session ([a-z0-9-]+)/([a-z0-9-]+) created`)

// topology is who is what, as the two topologies say.
type topology struct {
	name     string
	overlays [3]string // c1, c2, c3
	defaults [3]bool   // which member is registered as the Default
	members  []int     // indices of clusters holding children
}

var (
	topologyA = topology{name: "A", overlays: [3]string{"single-cluster", "workload", "workload"}, members: []int{0, 1, 2}}
	topologyB = topology{name: "B", overlays: [3]string{"primary-management-only", "workload-default", "workload"}, defaults: [3]bool{false, true, false}, members: []int{1, 2}}
)

// sessionArgs are testSessions' session flags: its target runs in c2 and c3, and where
// neither is the Default (topology A's is c1) the session asks only for the target's
// traffic, as nothing else could answer for its environment.
func (tp topology) sessionArgs(args ...string) []string {
	if tp.defaults[1] || tp.defaults[2] {
		return args
	}
	return append(args, "--no-env", "--fs-mode", "local", "--no-dns", "--no-outgoing")
}

// setUp installs the topology and registers the members with c1, the Primary.
func setUp(t *testing.T, f *framework.Framework, tp topology) {
	ctx := f.Context(5 * time.Minute)
	// Members first: the Primary of topology B refuses sessions until its Default exists.
	for i := 2; i >= 0; i-- {
		f.Install(ctx, f.Clusters[i], tp.overlays[i])
	}
	primary := f.Clusters[0]
	_, _ = f.Kubectl(primary, "delete", "mirrordclusters", "--all", "--wait=true")
	if tp.name == "B" {
		// A management-only Primary without members is installed and ready, and says what
		// is missing.
		out, err := f.RunPlugin(ctx, primary, "status")
		if err != nil || !strings.Contains(out, "Problem:     sessions fail until an admin fixes this: no Default cluster") {
			t.Errorf("status of a Primary without members (%v):\n%s", err, out)
		}
	}
	for i := 1; i <= 2; i++ {
		c := f.Clusters[i]
		args := []string{"cluster", "register", c.Name, "--member-kubeconfig", c.Kubeconfig, "--server", c.InternalServer, "--workload"}
		if tp.defaults[i] {
			args = append(args, "--default")
		}
		if out, err := f.RunPlugin(ctx, primary, args...); err != nil {
			t.Fatalf("registering %s: %v\n%s", c.Name, err, out)
		}
	}
	f.Eventually(ctx, 30*time.Second, "members reachable", func(ctx context.Context) error {
		for i := 1; i <= 2; i++ {
			mc, err := primary.Mirrord.MirrordV1alpha1().MirrordClusters().Get(ctx, f.Clusters[i].Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if !meta.IsStatusConditionTrue(mc.Status.Conditions, mirrordv1alpha1.ConditionReachable) || mc.Status.KubernetesVersion == "" {
				return fmt.Errorf("%s: %+v", mc.Name, mc.Status)
			}
		}
		return nil
	})
}

// startSession runs `sessions create` and returns the CLI process and the session's name.
func startSession(t *testing.T, f *framework.Framework, ns string, args ...string) (*exec.Cmd, *framework.SyncBuffer, string) {
	cmd, out := f.StartPlugin(f.Clusters[0], append([]string{"-n", ns, "sessions", "create"}, args...)...)
	text, err := out.WaitFor(t.Context(), " created for ", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, out, createdRE.FindStringSubmatch(text)[2]
}

func getSession(ctx context.Context, f *framework.Framework, ns, name string) (*mirrordv1alpha1.MirrordSession, error) {
	return f.Clusters[0].Mirrord.MirrordV1alpha1().MirrordSessions(ns).Get(ctx, name, metav1.GetOptions{})
}

func waitPhase(t *testing.T, f *framework.Framework, ns, name string, phase mirrordv1alpha1.SessionPhase, msg string, timeout time.Duration) *mirrordv1alpha1.MirrordSession {
	t.Helper()
	var s *mirrordv1alpha1.MirrordSession
	f.Eventually(t.Context(), timeout, fmt.Sprintf("session %s %s", name, phase), func(ctx context.Context) error {
		var err error
		if s, err = getSession(ctx, f, ns, name); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(s.Status.Conditions, mirrordv1alpha1.ConditionReady)
		if s.Status.Phase != phase || (msg != "" && (ready == nil || !strings.Contains(ready.Message, msg))) {
			return fmt.Errorf("phase %s, conditions %+v", s.Status.Phase, s.Status.Conditions)
		}
		return nil
	})
	return s
}

// leftovers lists, in every cluster, the children of a session, the agent Jobs they own,
// and agent Jobs no live session owns (agents are shared: a Job outlives a session only while
// another session uses it).
func leftovers(ctx context.Context, f *framework.Framework, sessionUID string) []string {
	var out []string
	for _, c := range f.Clusters {
		mcs, err := c.Mirrord.MirrordV1alpha1().MirrordClusterSessions(controllerNS).List(ctx, metav1.ListOptions{
			LabelSelector: labels.Set{mirrordv1alpha1.LabelParentUID: sessionUID}.String()})
		if err != nil {
			out = append(out, c.Name+": "+err.Error())
			continue
		}
		ours := map[types.UID]bool{}
		for _, m := range mcs.Items {
			out = append(out, c.Name+": MirrordClusterSession "+m.Name)
			ours[m.UID] = true
		}
		jobs, err := c.Kube.BatchV1().Jobs(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: mirrordv1alpha1.LabelComponent + "=" + mirrordv1alpha1.ComponentAgent})
		if err != nil {
			out = append(out, c.Name+": "+err.Error())
			continue
		}
		for _, j := range jobs.Items {
			live := 0
			for _, r := range j.OwnerReferences {
				if ours[r.UID] {
					out = append(out, c.Name+": Job "+j.Name+" of this session")
				}
				if o, err := c.Mirrord.MirrordV1alpha1().MirrordClusterSessions(controllerNS).Get(ctx, r.Name, metav1.GetOptions{}); err == nil && o.UID == r.UID && o.DeletionTimestamp == nil {
					live++
				}
			}
			if live == 0 {
				out = append(out, c.Name+": Job "+j.Name+" of no live session")
			}
		}
	}
	return out
}

// agentJobs returns the agent Jobs child uses in c.
func agentJobs(ctx context.Context, c *framework.Cluster, child string) ([]batchv1.Job, error) {
	jobs, err := c.Kube.BatchV1().Jobs(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: mirrordv1alpha1.LabelComponent + "=" + mirrordv1alpha1.ComponentAgent})
	if err != nil {
		return nil, err
	}
	var out []batchv1.Job
	for _, j := range jobs.Items {
		for _, r := range j.OwnerReferences {
			if r.Name == child {
				out = append(out, j)
				break
			}
		}
	}
	return out, nil
}

// agentPods returns the pods of the agent Jobs child uses in c.
func agentPods(ctx context.Context, c *framework.Cluster, child string) ([]corev1.Pod, error) {
	jobs, err := agentJobs(ctx, c, child)
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, j := range jobs {
		pods, err := c.Kube.CoreV1().Pods(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: batchv1.ControllerUidLabel + "=" + string(j.UID)})
		if err != nil {
			return nil, err
		}
		out = append(out, pods.Items...)
	}
	return out, nil
}

// checkAgents asserts one ready agent per target pod, on the pod's node, in each cluster.
func checkAgents(ctx context.Context, f *framework.Framework, tp topology, ns string, s *mirrordv1alpha1.MirrordSession) error {
	for _, i := range tp.members {
		c := f.Clusters[i]
		mcs, err := c.Mirrord.MirrordV1alpha1().MirrordClusterSessions(controllerNS).List(ctx, metav1.ListOptions{
			LabelSelector: labels.Set{mirrordv1alpha1.LabelParentUID: string(s.UID)}.String()})
		if err != nil || len(mcs.Items) != 1 {
			return fmt.Errorf("%s: want one child session, got %v (%v)", c.Name, len(mcs.Items), err)
		}
		pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
		if err != nil {
			return err
		}
		agents, err := agentPods(ctx, c, mcs.Items[0].Name)
		if err != nil {
			return err
		}
		running := map[string]string{} // target pod UID -> agent node
		for _, a := range agents {
			if a.Status.Phase == corev1.PodRunning && a.DeletionTimestamp == nil {
				running[a.Labels[mirrordv1alpha1.LabelTargetPodUID]] = a.Spec.NodeName
			}
		}
		live := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			live++
			if node, ok := running[string(p.UID)]; !ok || node != p.Spec.NodeName {
				return fmt.Errorf("%s: target pod %s (node %s) has no running agent on its node: %v", c.Name, p.Name, p.Spec.NodeName, running)
			}
		}
		if i > 0 && live == 0 {
			return fmt.Errorf("%s: no target pods", c.Name)
		}
		if len(running) != live {
			return fmt.Errorf("%s: %d running agents for %d target pods", c.Name, len(running), live)
		}
	}
	return nil
}

func TestSessionsTopologyA(t *testing.T) {
	f := framework.New(t)
	f.RequireClusters(3)
	setUp(t, f, topologyA)
	testSessions(t, f, topologyA)
	t.Run("database branches on a Primary that is also the Default", func(t *testing.T) {
		f := framework.New(t)
		testDBBranches(t, f, postgresEngine, f.Clusters[0], f.Clusters[0])
	})
	t.Run("MariaDB branches on a Primary that is also the Default", func(t *testing.T) {
		f := framework.New(t)
		testDBBranches(t, f, mariadbEngine, f.Clusters[0], f.Clusters[0])
	})
	t.Run("exec on a Primary that is also the Default goes straight to its own agents", func(t *testing.T) {
		f := framework.New(t)
		ctx := f.Context(3 * time.Minute)
		ns := f.SharedNamespace(f.Clusters...)
		for _, c := range f.Clusters {
			f.EchoApp(ctx, c, ns, "api", 1)
		}
		echoBin := buildEcho(t)
		script := fmt.Sprintf(`echo "CLUSTER_NAME=$CLUSTER_NAME"; %s get http://api:8080/own`, echoBin)
		out, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "exec", "-t", "deploy/api", "--incoming", "off", "--", "sh", "-c", script)
		if err != nil {
			t.Fatalf("exec: %v\n%s", err, out)
		}
		if r := lastReply(t, out); !strings.Contains(out, "CLUSTER_NAME=c1") || r.Cluster != "c1" || r.Path != "/own" {
			t.Errorf("exec on c1 saw:\n%s", out)
		}
	})
}

func TestSessionsTopologyB(t *testing.T) {
	f := framework.New(t)
	f.RequireClusters(3)
	setUp(t, f, topologyB)
	testSessions(t, f, topologyB)
	t.Run("database branches copied by a management-only Primary to its Default", func(t *testing.T) {
		f := framework.New(t)
		testDBBranches(t, f, postgresEngine, f.Clusters[0], f.Clusters[1])
	})
	t.Run("MariaDB branches copied by a management-only Primary to its Default", func(t *testing.T) {
		f := framework.New(t)
		testDBBranches(t, f, mariadbEngine, f.Clusters[0], f.Clusters[1])
	})
	t.Run("two Defaults stop the Primary from serving sessions", func(t *testing.T) {
		f := framework.New(t)
		ctx := f.Context(3 * time.Minute)
		ns := f.SharedNamespace(f.Clusters...)
		f.EchoApp(ctx, f.Clusters[1], ns, "api", 1)
		c3 := f.Clusters[2]
		if out, err := f.RunPlugin(ctx, f.Clusters[0], "cluster", "register", c3.Name, "--member-kubeconfig", c3.Kubeconfig, "--server", c3.InternalServer, "--default"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		defer func() {
			if out, err := f.RunPlugin(context.Background(), f.Clusters[0], "cluster", "register", c3.Name, "--member-kubeconfig", c3.Kubeconfig, "--server", c3.InternalServer); err != nil {
				t.Errorf("restoring c3: %v: %s", err, out)
			}
		}()
		time.Sleep(2 * time.Second)
		out, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "sessions", "create", "-t", "deploy/api", "--detach", "--timeout", "30s")
		if err == nil || !strings.Contains(out, "2 Default clusters (c2, c3)") || !strings.Contains(out, "spec.default: false on all but one") {
			t.Fatalf("want a session failing on two Defaults, got %v:\n%s", err, out)
		}
		// `status` says so too (the controller stays ready: it serves the relay, and an
		// admin fixing the topology needs it running).
		out, err = f.RunPlugin(ctx, f.Clusters[0], "status")
		if err != nil || !strings.Contains(out, "Problem:     sessions fail until an admin fixes this: 2 Default clusters (c2, c3)") {
			t.Errorf("status with two Defaults (%v):\n%s", err, out)
		}
	})
}

// testSessions is what both topologies must show.
func testSessions(t *testing.T, f *framework.Framework, tp topology) {
	ctx := f.Context(10 * time.Minute)
	ns := f.SharedNamespace(f.Clusters...)
	f.EchoApp(ctx, f.Clusters[1], ns, "api", 2)
	f.EchoApp(ctx, f.Clusters[2], ns, "api", 2)

	cli, out, name := startSession(t, f, ns, tp.sessionArgs("-t", "deploy/api")...)
	if _, err := out.WaitFor(ctx, "ready; heartbeating", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	s := waitPhase(t, f, ns, name, mirrordv1alpha1.SessionReady, "", 10*time.Second)
	if s.Status.ClustersReady != fmt.Sprintf("%d/%d", len(tp.members), len(tp.members)) {
		t.Errorf("clustersReady = %q, want all of %d", s.Status.ClustersReady, len(tp.members))
	}
	f.Eventually(ctx, 30*time.Second, "one agent per target pod on its node", func(ctx context.Context) error { return checkAgents(ctx, f, tp, ns, s) })
	table, err := f.Kubectl(f.Clusters[0], "-n", ns, "get", "mirrordsessions")
	if err != nil || !regexp.MustCompile(name+`\s+\S+\s+deployment/api\s+mirror\s+\S+\s+`+s.Status.ClustersReady+`\s+Ready\s+`).MatchString(table) {
		t.Errorf("kubectl get mirrordsessions does not show the session Ready %s:\n%s%v", s.Status.ClustersReady, table, err)
	}

	t.Run("agents follow the target", func(t *testing.T) {
		c2 := f.Clusters[1]
		if _, err := f.Kubectl(c2, "-n", ns, "scale", "deploy/api", "--replicas=3"); err != nil {
			t.Fatal(err)
		}
		f.Eventually(ctx, 60*time.Second, "agents after scale-up", func(ctx context.Context) error {
			if err := checkAgents(ctx, f, tp, ns, s); err != nil {
				return err
			}
			pods, _ := c2.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
			if len(pods.Items) != 3 {
				return fmt.Errorf("%d pods", len(pods.Items))
			}
			return nil
		})
		if _, err := f.Kubectl(c2, "-n", ns, "scale", "deploy/api", "--replicas=2"); err != nil {
			t.Fatal(err)
		}
		f.Eventually(ctx, 60*time.Second, "agents after scale-down", func(ctx context.Context) error {
			pods, _ := c2.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
			if len(pods.Items) != 2 {
				return fmt.Errorf("%d pods", len(pods.Items))
			}
			return checkAgents(ctx, f, tp, ns, s)
		})
		waitPhase(t, f, ns, name, mirrordv1alpha1.SessionReady, "", 30*time.Second)
	})

	t.Run("the Primary's controller restarts without losing the session", func(t *testing.T) {
		if _, err := f.Kubectl(f.Clusters[0], "-n", controllerNS, "delete", "pod", "-l", mirrordv1alpha1.LabelComponent+"=controller", "--wait=false"); err != nil {
			t.Fatal(err)
		}
		if out, err := f.Kubectl(f.Clusters[0], "-n", controllerNS, "rollout", "status", "deploy/mirrord-controller", "--timeout=90s"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		time.Sleep(3 * time.Second)
		waitPhase(t, f, ns, name, mirrordv1alpha1.SessionReady, "", 30*time.Second)
		if err := checkAgents(ctx, f, tp, ns, s); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a member's API server down makes the session Degraded until it is back", func(t *testing.T) {
		if framework.Rig() == "" {
			t.Skip("needs the local rig (MIRRORD_E2E_RIG) to stop an API server")
		}
		start := f.StopAPIServer("c3")
		waitPhase(t, f, ns, name, mirrordv1alpha1.SessionDegraded, "c3", 30*time.Second)
		start()
		restarted := time.Now()
		waitPhase(t, f, ns, name, mirrordv1alpha1.SessionReady, "", 60*time.Second)
		// The session is Ready again as soon as the Primary reaches c3; c3's own controller
		// may still lose its leadership to a request that hung across the restart, and lead
		// again (its controllers restarted) only seconds later. The next subtests need it.
		f.Eventually(ctx, 60*time.Second, "c3's controller leading again", func(ctx context.Context) error {
			l, err := f.Clusters[2].Kube.CoordinationV1().Leases(controllerNS).Get(ctx, manager.LeaseName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if l.Spec.RenewTime == nil || !l.Spec.RenewTime.After(restarted.Add(2*time.Second)) {
				return fmt.Errorf("leader Lease last renewed %v", l.Spec.RenewTime)
			}
			return nil
		})
	})

	t.Run("ending the session removes everything within 10s", func(t *testing.T) {
		if err := cli.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		took := f.Eventually(ctx, 10*time.Second, "children and Jobs gone", func(ctx context.Context) error {
			if l := leftovers(ctx, f, string(s.UID)); len(l) > 0 {
				return fmt.Errorf("left: %v", l)
			}
			if _, err := getSession(ctx, f, ns, name); err == nil {
				return fmt.Errorf("session still exists")
			}
			return nil
		})
		_ = cli.Wait()
		t.Logf("everything removed %s after Ctrl-C (%s)", took.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
		if !strings.Contains(out.String(), "session "+name+" ended") {
			t.Errorf("the CLI did not say it ended the session:\n%s", out)
		}
	})

	t.Run("without heartbeats the session ends within TTL+10s", func(t *testing.T) {
		f := framework.New(t)
		cli, out, name := startSession(t, f, ns, tp.sessionArgs("-t", "deploy/api", "--session-ttl", "10")...)
		if _, err := out.WaitFor(ctx, "ready; heartbeating", 60*time.Second); err != nil {
			t.Fatal(err)
		}
		s, err := getSession(ctx, f, ns, name)
		if err != nil {
			t.Fatal(err)
		}
		_ = cli.Process.Kill() // kill -9: no goodbye
		_ = cli.Wait()
		killed := time.Now()
		f.Eventually(ctx, 20*time.Second, "session and its children gone", func(ctx context.Context) error {
			if l := leftovers(ctx, f, string(s.UID)); len(l) > 0 {
				return fmt.Errorf("left: %v", l)
			}
			if _, err := getSession(ctx, f, ns, name); err == nil {
				return fmt.Errorf("session still exists")
			}
			return nil
		})
		t.Logf("gone %s after kill -9 (TTL 10s)", time.Since(killed).Round(100*time.Millisecond))
	})

	t.Run("a member's policy blocking steal fails the session, naming it", func(t *testing.T) {
		f := framework.New(t)
		c3 := f.Clusters[2]
		_, err := c3.Mirrord.MirrordV1alpha1().MirrordPolicies(ns).Create(ctx, &mirrordv1alpha1.MirrordPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "no-steal"},
			Spec:       mirrordv1alpha1.PolicySpec{TargetPath: "deploy/api", Block: []mirrordv1alpha1.BlockedFeature{mirrordv1alpha1.BlockSteal}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = c3.Mirrord.MirrordV1alpha1().MirrordPolicies(ns).Delete(context.Background(), "no-steal", metav1.DeleteOptions{})
		}()
		out, err := f.RunPlugin(ctx, f.Clusters[0], tp.sessionArgs("-n", ns, "sessions", "create", "-t", "deploy/api", "--steal", "--timeout", "60s")...)
		if err == nil || !strings.Contains(out, "cluster c3: blocked by MirrordPolicy "+ns+"/no-steal: stealing traffic is blocked") {
			t.Fatalf("want the session to fail naming the policy, got %v:\n%s", err, out)
		}
		name := createdRE.FindStringSubmatch(out)[2]
		// The CLI ended it; nothing is left anywhere.
		f.Eventually(ctx, 10*time.Second, "nothing left", func(ctx context.Context) error {
			if _, err := getSession(ctx, f, ns, name); err == nil {
				return fmt.Errorf("session still exists")
			}
			all, _ := f.Clusters[2].Kube.BatchV1().Jobs(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: mirrordv1alpha1.LabelComponent + "=agent"})
			if len(all.Items) > 0 {
				return fmt.Errorf("%d agent Jobs in c3", len(all.Items))
			}
			return nil
		})
		// Mirroring the same target is still allowed.
		out, err = f.RunPlugin(ctx, f.Clusters[0], tp.sessionArgs("-n", ns, "sessions", "create", "-t", "deploy/api", "--detach", "--session-ttl", "5", "--timeout", "60s")...)
		if err != nil {
			t.Fatalf("mirror session: %v\n%s", err, out)
		}
	})

	if tp.name == "A" {
		t.Run("user B cannot create a session owned by user A", func(t *testing.T) {
			testOwnership(t, framework.New(t), ns)
		})
	}
	if tp.name == "B" {
		t.Run("a policy blocking files refuses local mode with remote overrides", func(t *testing.T) {
			f := framework.New(t)
			c2 := f.Clusters[1]
			_, err := c2.Mirrord.MirrordV1alpha1().MirrordPolicies(ns).Create(ctx, &mirrordv1alpha1.MirrordPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "no-files"},
				Spec:       mirrordv1alpha1.PolicySpec{TargetPath: "deploy/api", Block: []mirrordv1alpha1.BlockedFeature{mirrordv1alpha1.BlockFS}},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				_ = c2.Mirrord.MirrordV1alpha1().MirrordPolicies(ns).Delete(context.Background(), "no-files", metav1.DeleteOptions{})
			}()
			out, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "sessions", "create", "-t", "deploy/api", "--fs-mode", "local", "--fs-read-only", ".*", "--timeout", "60s")
			if err == nil || !strings.Contains(out, "cluster c2: blocked by MirrordPolicy "+ns+"/no-files: reading the target's files is blocked; use --fs-mode local without --fs-read-only") {
				t.Fatalf("want the session refused by the policy, got %v:\n%s", err, out)
			}
			out, err = f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "sessions", "create", "-t", "deploy/api", "--fs-mode", "local", "--detach", "--session-ttl", "5", "--timeout", "60s")
			if err != nil {
				t.Fatalf("local files only, under the policy: %v\n%s", err, out)
			}
		})
		t.Run("who may target what", func(t *testing.T) {
			testWhoMayTargetWhat(t, framework.New(t), ns)
		})
	}
}

// testOwnership creates ServiceAccounts alice and bob with mirrord-user and has bob try to
// create a session in alice's name.
func testOwnership(t *testing.T, f *framework.Framework, ns string) {
	ctx := f.Context(2 * time.Minute)
	primary := f.Clusters[0]
	for _, user := range []string{"alice", "bob"} {
		if _, err := f.Kubectl(primary, "-n", ns, "create", "serviceaccount", user); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Kubectl(primary, "-n", ns, "create", "rolebinding", user+"-mirrord", "--clusterrole=mirrord-user", "--serviceaccount="+ns+":"+user); err != nil {
			t.Fatal(err)
		}
	}
	token, err := f.Kubectl(primary, "-n", ns, "create", "token", "bob", "--duration=10m")
	if err != nil {
		t.Fatal(err)
	}
	bobCfg := *primary.Config
	bobCfg.BearerToken, bobCfg.TLSClientConfig.CertData, bobCfg.TLSClientConfig.KeyData = strings.TrimSpace(token), nil, nil
	bobCfg.CertFile, bobCfg.KeyFile = "", ""
	bobClient, err := versionedFor(&bobCfg)
	if err != nil {
		t.Fatal(err)
	}
	bobKube, err := kubernetes.NewForConfig(&bobCfg)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := session.Whoami(ctx, bobKube)
	if err != nil {
		t.Fatal(err)
	}
	session := func(owner string) *mirrordv1alpha1.MirrordSession {
		return &mirrordv1alpha1.MirrordSession{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "owner-test-"},
			Spec: mirrordv1alpha1.MirrordSessionSpec{
				Owner: owner, OwnerGroups: bob.Groups, TTLSeconds: 5,
				Target: mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: "api", Namespace: ns},
			},
		}
	}
	_, err = bobClient.MirrordV1alpha1().MirrordSessions(ns).Create(ctx, session("system:serviceaccount:"+ns+":alice"), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "spec.owner must be the user creating the session (system:serviceaccount:"+ns+":bob)") {
		t.Fatalf("bob creating alice's session: err = %v, want the admission policy's denial", err)
	}
	mine, err := bobClient.MirrordV1alpha1().MirrordSessions(ns).Create(ctx, session("system:serviceaccount:"+ns+":bob"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("bob creating his own session with only mirrord-user: %v", err)
	}
	// Nor can he hand it to alice afterwards (retrying while the controller updates it).
	f.Eventually(ctx, 20*time.Second, "owner change denied", func(ctx context.Context) error {
		latest, err := bobClient.MirrordV1alpha1().MirrordSessions(ns).Get(ctx, mine.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		latest.Spec.Owner = "system:serviceaccount:" + ns + ":alice"
		_, err = bobClient.MirrordV1alpha1().MirrordSessions(ns).Update(ctx, latest, metav1.UpdateOptions{})
		if err == nil {
			t.Fatal("bob handed his session to alice")
		}
		if !strings.Contains(err.Error(), "cannot change") {
			return err
		}
		return nil
	})
}

func versionedFor(cfg *rest.Config) (versioned.Interface, error) { return versioned.NewForConfig(cfg) }

// A role configuration that contradicts itself stops the controller with a message that says
// what to fix (the real binary, against a real cluster).
func TestControllerRefusesBadRoles(t *testing.T) {
	f := framework.New(t)
	ctx := f.Context(time.Minute)
	for name, tc := range map[string]struct {
		settings map[string]string
		want     string
	}{
		"managementOnly Primary marked Workload": {map[string]string{"primary": "true", "managementOnly": "true", "workload": "true"}, "a managementOnly Primary runs no workloads but this one is also Workload"},
		"Default that is not a Workload":         {map[string]string{"default": "true"}, "must also be a Workload"},
		"no role":                                {map[string]string{}, "this installation has no role"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for k, v := range tc.settings {
				if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := f.RunPlugin(ctx, f.Clusters[0], "controller", "--roles-dir", dir, "--controller-namespace", controllerNS,
				"--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=0")
			if err == nil || !strings.Contains(out, "invalid role configuration: ") || !strings.Contains(out, tc.want) {
				t.Fatalf("want the controller to stop with %q, got %v:\n%s", tc.want, err, out)
			}
		})
	}
}
