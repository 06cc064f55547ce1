//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

// TestAgentServesTheTarget runs a session on one cluster and speaks the session protocol to
// its real agent Job: the target's env, a file of its ConfigMap mount, a Service resolved
// through the target's DNS and a connection dialled from its network.
func TestAgentServesTheTarget(t *testing.T) {
	f := framework.New(t)
	c := f.Clusters[0]
	ctx := f.Context(5 * time.Minute)
	f.InstallAlone(ctx, c)
	ns := f.Namespace(c)
	deployWithConfig(ctx, t, f, c, ns)

	_, out, name := startSession(t, f, ns, "-t", "deploy/api")
	if _, err := out.WaitFor(ctx, "ready; heartbeating", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	ag := agentOf(ctx, t, f, c, ns, name)
	testAgentCredentials(ctx, t, f, c, ag)
	cl, err := ag.dial(ag.key)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	env, err := cl.Env()
	if err != nil || env["GREETING"] != "hello from the target" || env["CLUSTER_NAME"] != c.Name {
		t.Errorf("env: %v %v", env, err)
	}
	file, err := cl.Open("/etc/app/config.yaml", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := file.ReadAt(buf, 0)
	file.Close()
	if !errors.Is(err, io.EOF) || string(buf[:n]) != "mode: remote\n" {
		t.Errorf("ConfigMap file: %q %v", buf[:n], err)
	}
	if _, err := cl.Open("/etc/app/config.yaml", unix.O_WRONLY, 0); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("writing in the default read mode: %v", err)
	}
	// The container's files, never the kernel's views of it: its environment is not to be
	// read around the session's env settings, nor another process's memory.
	for _, p := range []string{"/proc/1/environ", "/proc/1/status", "/proc/1/cmdline", "/sys/kernel/uevent_seqnum"} {
		if f, err := cl.Open(p, unix.O_RDONLY, 0); err == nil || !strings.Contains(err.Error(), "not one of the container's files") {
			if f != nil {
				f.Close()
			}
			t.Errorf("opening %s in the target: %v, want it refused", p, err)
		}
	}

	// The agent refuses what a session's features switch off, whatever its client asks.
	off := *ag.features.DeepCopy()
	off.Env.Disabled, off.Network.DNS.Disabled = true, true
	off.Network.Outgoing.TCP, off.Network.Outgoing.UDP = ptr.To(false), ptr.To(false)
	offAgent := ag
	offAgent.features = &off
	clOff, err := offAgent.dial(ag.key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clOff.Env(); err == nil || !strings.Contains(err.Error(), "switched off") {
		t.Errorf("env of a session without env: %v, want it refused", err)
	}
	if _, err := clOff.Dial("tcp", "10.96.0.1:443"); err == nil || !strings.Contains(err.Error(), "switched off") {
		t.Errorf("dial of a session without outgoing TCP: %v, want it refused", err)
	}
	if _, err := clOff.Do(protocol.Request{Op: protocol.OpResolvConf}); err == nil || !strings.Contains(err.Error(), "switched off") {
		t.Errorf("resolv.conf of a session without DNS: %v, want it refused", err)
	}
	clOff.Close()

	svc, err := c.Kube.CoreV1().Services(ns).Get(ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conf, err := cl.Do(protocol.Request{Op: protocol.OpResolvConf})
	if err != nil || !strings.Contains(string(conf.Data), ns+".svc.cluster.local") {
		t.Errorf("resolv.conf: %q %v", conf.Data, err)
	}
	q, _ := (&dnsmessage.Message{Header: dnsmessage.Header{ID: 9, RecursionDesired: true}, Questions: []dnsmessage.Question{{
		Name: dnsmessage.MustNewName("api." + ns + ".svc.cluster.local."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}}).Pack()
	r, err := cl.Do(protocol.Request{Op: protocol.OpDNS, Data: q})
	var m dnsmessage.Message
	if err != nil || m.Unpack(r.Data) != nil || len(m.Answers) != 1 {
		t.Fatalf("DNS through the target: %v %+v", err, m)
	}
	a, ok := m.Answers[0].Body.(*dnsmessage.AResource)
	if !ok || net.IP(a.A[:]).String() != svc.Spec.ClusterIP {
		t.Fatalf("api resolved to %v, want the Service's %s", m.Answers[0].Body, svc.Spec.ClusterIP)
	}
	// The Service is new: kube-proxy may not route it yet (the node then answers "network
	// unreachable"), so dial until it does.
	var conn net.Conn
	f.Eventually(ctx, 30*time.Second, "the Service dialled from the target", func(context.Context) error {
		conn, err = cl.Dial("tcp", net.JoinHostPort(svc.Spec.ClusterIP, "8080"))
		return err
	})
	fmt.Fprintf(conn, "GET /through-the-agent HTTP/1.0\r\nHost: api\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	raw, _ := io.ReadAll(conn)
	_, body, _ := strings.Cut(string(raw), "\r\n\r\n")
	var reply struct{ Path, Cluster string }
	if err := json.Unmarshal([]byte(body), &reply); err != nil || reply.Path != "/through-the-agent" {
		t.Errorf("the Service through the agent answered %q (%v)", raw, err)
	}
}

// agentAccess is what a member relay knows of a session's agent: its address, its key, and
// the session's name and features to name in the Hello.
type agentAccess struct {
	mirrordv1alpha1.Agent
	session  string
	key      []byte
	features *mirrordv1alpha1.Features
}

// agentOf returns the access to the agent of session name, alone on c.
func agentOf(ctx context.Context, t *testing.T, f *framework.Framework, c *framework.Cluster, ns, name string) agentAccess {
	t.Helper()
	s, err := getSession(ctx, f, ns, name)
	if err != nil || len(s.Status.Clusters) != 1 {
		t.Fatalf("session: %+v %v", s, err)
	}
	child, err := c.Mirrord.MirrordV1alpha1().MirrordClusterSessions(controllerNS).Get(ctx, s.Status.Clusters[0].ChildName, metav1.GetOptions{})
	if err != nil || len(child.Status.Agents) != 1 || child.Status.Agents[0].Address == "" || child.Status.Features == nil {
		t.Fatalf("child: %+v %v", child.Status, err)
	}
	ag := child.Status.Agents[0]
	job, err := c.Kube.BatchV1().Jobs(controllerNS).Get(ctx, ag.Job, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := c.Kube.CoreV1().Secrets(controllerNS).Get(ctx, agentconfig.KeySecretOf(job.Spec.Template.Spec), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return agentAccess{Agent: ag, session: controllerNS + "/" + child.Name, key: secret.Data[agentconfig.KeyFile], features: child.Status.Features}
}

// dial speaks the session protocol to the agent with key (pod IPs are routed from this host
// on the rig).
func (a agentAccess) dial(key []byte) (*protocol.Client, error) {
	conn, err := net.DialTimeout("tcp", a.Address, 5*time.Second)
	if err != nil {
		return nil, err
	}
	sess, err := protocol.DialAgent(tls.Client(conn, protocol.AgentClientTLS()), protocol.Hello{Session: a.session, Features: a.features}, key)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return protocol.NewClient(sess), nil
}

// testAgentCredentials: whoever may read everything but Secrets in the controller's
// namespace (the built-in view role) finds no agent credential in any Job or Pod, and
// cannot open a session on the agent, least of all one with features the child lacks.
func testAgentCredentials(ctx context.Context, t *testing.T, f *framework.Framework, c *framework.Cluster, ag agentAccess) {
	t.Helper()
	if out, err := f.Kubectl(c, "-n", controllerNS, "create", "rolebinding", "e2e-viewer", "--clusterrole=view", "--user=viewer"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = f.Kubectl(c, "-n", controllerNS, "delete", "rolebinding", "e2e-viewer") })
	cfg := rest.CopyConfig(c.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "viewer"}
	viewer, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var seen []byte
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		jobs, err := viewer.BatchV1().Jobs(controllerNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil // the binding is not in the authorizer's cache yet
		}
		pods, err := viewer.CoreV1().Pods(controllerNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		jb, _ := json.Marshal(jobs)
		pb, _ := json.Marshal(pods)
		seen = append(jb, pb...)
		return true, nil
	})
	if err != nil {
		t.Fatalf("the viewer lists nothing: %v", err)
	}
	if !bytes.Contains(seen, []byte(ag.Job)) {
		t.Fatalf("the viewer's lists lack agent Job %s: the check below would prove nothing", ag.Job)
	}
	for _, enc := range []string{string(ag.key), base64.StdEncoding.EncodeToString(ag.key), hex.EncodeToString(ag.key)} {
		if bytes.Contains(seen, []byte(enc)) {
			t.Errorf("the agent key is readable by a viewer in a Job or Pod of %s", controllerNS)
		}
	}
	if _, err := viewer.CoreV1().Secrets(controllerNS).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("a viewer reading the agent's key Secret: %v, want Forbidden", err)
	}
	// A hand-made Hello with every feature the child never had, without the key, is refused.
	wide := ag
	wide.features = &mirrordv1alpha1.Features{FS: mirrordv1alpha1.FSFeature{Mode: "write"}}
	if _, err := wide.dial(bytes.Repeat([]byte{1}, protocol.AgentKeySize)); err == nil || !strings.Contains(err.Error(), "not signed with this agent's key") {
		t.Errorf("a Hello with a guessed key: %v, want it refused", err)
	}
	// So is the protocol in clear.
	conn, err := net.DialTimeout("tcp", ag.Address, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := protocol.Dial(conn, protocol.Hello{Session: ag.session, Features: wide.features}, nil); err == nil {
		t.Error("the agent accepted a handshake without TLS")
	}
}

// TestAgentIncoming subscribes to a real agent's incoming traffic: a mirroring session sees
// every request while the target answers; a second session on the same target steals only
// the requests of its header filter.
func TestAgentIncoming(t *testing.T) {
	f := framework.New(t)
	c := f.Clusters[0]
	ctx := f.Context(5 * time.Minute)
	f.InstallAlone(ctx, c)
	ns := f.Namespace(c)
	deployWithConfig(ctx, t, f, c, ns)
	pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods: %v", err)
	}
	target := net.JoinHostPort(pods.Items[0].Status.PodIP, "8080")

	mcmd, mout, mname := startSession(t, f, ns, "-t", "deploy/api", "--ports", "8080")
	scmd, sout, sname := startSession(t, f, ns, "-t", "deploy/api", "--steal", "--http-header-filter", "^X-User: alice$", "--ports", "8080")
	for _, out := range []*framework.SyncBuffer{mout, sout} {
		if _, err := out.WaitFor(ctx, "ready; heartbeating", 90*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// One agent serves both sessions.
	ma, sa := agentOf(ctx, t, f, c, ns, mname), agentOf(ctx, t, f, c, ns, sname)
	if ma.Job != sa.Job {
		t.Errorf("two sessions on one pod have two agents: %s and %s", ma.Job, sa.Job)
	}
	var stealClient *protocol.Client
	subscribe := func(name string) *protocol.Subscription {
		ag := agentOf(ctx, t, f, c, ns, name)
		cl, err := ag.dial(ag.key)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		sub, err := cl.Subscribe()
		if err != nil {
			t.Fatalf("subscribing to %s: %v", name, err)
		}
		if name == sname {
			stealClient = cl
		}
		return sub
	}
	mirrored := make(chan string, 10)
	msub := subscribe(mname)
	go func() {
		for {
			in, st, err := msub.Accept()
			if err != nil {
				return
			}
			// The request line as soon as it arrives: a delivery stays open until the
			// mirrored connection ends, and exec's local side also gets bytes as they come.
			go func() {
				defer st.Close()
				line, _ := bufio.NewReader(st).ReadString('\n')
				mirrored <- string(in.Kind) + " " + line
			}()
		}
	}()
	ssub := subscribe(sname)
	go func() {
		for {
			in, st, err := ssub.Accept()
			if err != nil {
				return
			}
			go func() {
				defer st.Close()
				req, err := http.ReadRequest(bufio.NewReader(st))
				if err != nil || in.Kind != protocol.IncomingRequest {
					return
				}
				body := "answered locally: " + req.URL.Path
				fmt.Fprintf(st, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			}()
		}
	}()

	ask := func(user, path string) string {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+target+path, nil)
		req.Header.Set("X-User", user)
		req.Close = true // one connection per request: each mirrored stream ends with it
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", user, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := ask("alice", "/alice"); got != "answered locally: /alice" {
		t.Errorf("alice's request was not stolen: %q", got)
	}
	if got := ask("bob", "/bob"); !strings.Contains(got, `"path":"/bob"`) {
		t.Errorf("bob's request did not reach the target: %q", got)
	}
	seen := map[string]bool{}
	timeout := time.After(15 * time.Second)
	for !seen["/alice"] || !seen["/bob"] {
		select {
		case m := <-mirrored:
			for _, p := range []string{"/alice", "/bob"} {
				if strings.HasPrefix(m, "mirror GET "+p+" HTTP/1.1") {
					seen[p] = true
				}
			}
		case <-timeout:
			t.Fatalf("the mirroring session saw %v, want both requests", seen)
		}
	}

	// The stealing session ends (its relay connection with it, here the test's own): the
	// agent stays for the mirroring session, and alice's requests reach the target again.
	if err := scmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	_ = scmd.Wait()
	stealClient.Close()
	f.Eventually(ctx, 10*time.Second, "alice's requests back at the target", func(ctx context.Context) error {
		if got := ask("alice", "/alice-again"); !strings.Contains(got, `"path":"/alice-again"`) {
			return fmt.Errorf("alice's request answered %q", got)
		}
		return nil
	})
	if _, err := c.Kube.BatchV1().Jobs(controllerNS).Get(ctx, ma.Job, metav1.GetOptions{}); err != nil {
		t.Fatalf("the shared agent went with one of its two sessions: %v", err)
	}
	timeout = time.After(15 * time.Second)
	for done := false; !done; {
		select {
		case m := <-mirrored:
			done = strings.HasPrefix(m, "mirror GET /alice-again HTTP/1.1")
		case <-timeout:
			t.Fatal("the mirroring session lost its traffic when the other session ended")
		}
	}

	// The last session's end takes the agent away within 10 s.
	if err := mcmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	f.Eventually(ctx, 10*time.Second, "the agent gone with its last session", func(ctx context.Context) error {
		jobs, err := c.Kube.BatchV1().Jobs(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: mirrordv1alpha1.LabelComponent + "=" + mirrordv1alpha1.ComponentAgent})
		if err != nil {
			return err
		}
		if len(jobs.Items) > 0 {
			return fmt.Errorf("agent Job %s still there", jobs.Items[0].Name)
		}
		return nil
	})
	_ = mcmd.Wait()
	t.Logf("the shared agent was removed %s after its last session ended", time.Since(start).Round(100*time.Millisecond))
}

// deployWithConfig deploys the sample app "api" with an env var, a ConfigMap mounted at
// /etc/app and a Service, and waits for it.
func deployWithConfig(ctx context.Context, t *testing.T, f *framework.Framework, c *framework.Cluster, ns string) {
	t.Helper()
	if _, err := c.Kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Data: map[string]string{"config.yaml": "mode: remote\n"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "api"}
	_, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app"}}}}},
					Containers: []corev1.Container{{
						Name: "app", Image: f.SampleImage, ImagePullPolicy: corev1.PullNever,
						Args:         []string{"serve", "-addr", ":8080"},
						Env:          []corev1.EnvVar{{Name: "GREETING", Value: "hello from the target"}, {Name: "CLUSTER_NAME", Value: c.Name}},
						Ports:        []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}},
						// An exec probe: port 8080 is not a probe port, so sessions may steal it.
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/echo", "get", "http://127.0.0.1:8080/healthz"}}},
							PeriodSeconds: 2,
						},
					}},
				},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromString("http")}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out, err := f.Kubectl(c, "-n", ns, "rollout", "status", "deploy/api", "--timeout=90s"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}
