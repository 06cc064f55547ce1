//go:build e2e

package e2e

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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"

	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

// echoReply is what the sample app answers.
type echoReply struct {
	Pod, Cluster, Path string
}

// TestExecTopologyB runs local programs through `kubectl mirrord exec` on topology B: c1 is a
// management-only Primary, c2 Default+Workload, c3 Workload; the target runs in c2 and c3.
func TestExecTopologyB(t *testing.T) {
	f := framework.New(t)
	f.RequireClusters(3)
	setUp(t, f, topologyB)
	ctx := f.Context(15 * time.Minute)
	c2, c3 := f.Clusters[1], f.Clusters[2]
	ns := f.SharedNamespace(f.Clusters...)
	deployWithConfig(ctx, t, f, c2, ns) // api with ConfigMap "app" mounted at /etc/app
	f.EchoApp(ctx, c3, ns, "api", 1)
	f.EchoApp(ctx, c2, ns, "backend", 1)
	echoBin := buildEcho(t)
	// Debian's nginx in c2 only, after the Services its environment links to.
	f.NginxApp(ctx, c2, ns, "web", map[string]string{"WEB_ROLE": "frontend", "WITH_SPACES": "a b  c"}, map[string]string{"DB_PASSWORD": "s3cret=x"})

	t.Run("ls: the namespace's targets across c2 and c3, asked of the management-only Primary", func(t *testing.T) {
		out, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "ls")
		if err != nil {
			t.Fatalf("ls: %v\n%s", err, out)
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^TARGET\s+CLUSTERS$`),
			regexp.MustCompile(`(?m)^deployment/api\s+c2,c3$`),
			regexp.MustCompile(`(?m)^deployment/backend\s+c2$`),
			regexp.MustCompile(`(?m)^pod/api-[a-z0-9-]+\s+c3$`),
		} {
			if !want.MatchString(out) {
				t.Errorf("ls has no line matching %s:\n%s", want, out)
			}
		}
		// mirrord's IDE extensions read -o json: a list of paths.
		out, err = f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "ls", "-t", "deployment", "-o", "json")
		var paths []string
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "[") {
				_ = json.Unmarshal([]byte(line), &paths)
			}
		}
		if err != nil || !slices.Contains(paths, "deployment/api") || slices.ContainsFunc(paths, func(p string) bool { return !strings.HasPrefix(p, "deployment/") }) {
			t.Errorf("ls -t deployment -o json: %v %q, want mirrord's list of deployments\n%s", err, paths, out)
		}
	})

	t.Run("a static Go binary and a Python script see the Default cluster", func(t *testing.T) {
		// The env var, then a Service of the Default cluster by its short name (the target's
		// search list), through the target's network.
		// The target's volumes: its ConfigMap and its service-account token, through FUSE.
		script := fmt.Sprintf(`echo "CLUSTER_NAME=$CLUSTER_NAME"; cat /etc/app/config.yaml; test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo token-present; %s get http://backend:8080/static`, echoBin)
		out, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "exec", "-t", "deploy/api", "--incoming", "off", "--", "sh", "-c", script)
		if err != nil {
			t.Fatalf("exec: %v\n%s", err, out)
		}
		if !strings.Contains(out, "CLUSTER_NAME=c2") {
			t.Errorf("the Go binary's shell did not see the Default cluster's env:\n%s", out)
		}
		if !strings.Contains(out, "mode: remote") || !strings.Contains(out, "token-present") {
			t.Errorf("the shell did not read the target's ConfigMap and token:\n%s", out)
		}
		if r := lastReply(t, out); r.Cluster != "c2" || !strings.HasPrefix(r.Pod, "backend-") || r.Path != "/static" {
			t.Errorf("the Go binary reached %+v", r)
		}
		py := `import os, json, urllib.request
print("CLUSTER_NAME=" + os.environ["CLUSTER_NAME"])
print("config " + open("/etc/app/config.yaml").read().strip())
print(urllib.request.urlopen("http://backend.` + ns + `:8080/python").read().decode())`
		out, err = f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "exec", "-t", "deploy/api", "--incoming", "off", "--", "python3", "-c", py)
		if err != nil {
			t.Fatalf("exec python: %v\n%s", err, out)
		}
		if r := lastReply(t, out); !strings.Contains(out, "CLUSTER_NAME=c2") || !strings.Contains(out, "config mode: remote") || r.Cluster != "c2" || r.Path != "/python" {
			t.Errorf("python saw:\n%s", out)
		}
	})

	t.Run("targetless: a Service of the Default cluster by its short name, from an agent in the session's namespace", func(t *testing.T) {
		// No target: mirrord's targetless. The agent is an unprivileged pod of the session's
		// namespace in the Default cluster c2 (not of mirrord-system), so the short name
		// resolves in that namespace; it goes with the session.
		script := fmt.Sprintf(`%s get http://backend:8080/targetless; hostname`, echoBin)
		out, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "exec", "--", "sh", "-c", script)
		if err != nil {
			t.Fatalf("exec: %v\n%s", err, out)
		}
		if !strings.Contains(out, "no target given: running targetless") {
			t.Errorf("exec did not say it runs targetless:\n%s", out)
		}
		if r := lastReply(t, out); r.Cluster != "c2" || !strings.HasPrefix(r.Pod, "backend-") || r.Path != "/targetless" {
			t.Errorf("the command reached %+v, want backend in c2\n%s", r, out)
		}
		if !strings.Contains(out, "\nmirrord-targetless-") {
			t.Errorf("the command's hostname is not the targetless agent pod's:\n%s", out)
		}
		selector := mirrordv1alpha1.LabelComponent + "=" + mirrordv1alpha1.ComponentTargetlessAgent
		f.Eventually(ctx, 30*time.Second, "the targetless agent Job in c2 gone", func(ctx context.Context) error {
			l, err := c2.Kube.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
			if err == nil && len(l.Items) > 0 {
				err = fmt.Errorf("%d left", len(l.Items))
			}
			return err
		})
	})

	t.Run("port-forward: a local port reaches a Service of the Default cluster by short name, targetless and from a target", func(t *testing.T) {
		for _, target := range [][]string{nil, {"-t", "deploy/api"}} {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := l.Addr().(*net.TCPAddr).Port
			l.Close()
			args := append([]string{"-n", ns, "port-forward", "-L", fmt.Sprintf("%d:backend:8080", port)}, target...)
			cmd, out := f.StartPlugin(f.Clusters[0], args...)
			session := execSession(ctx, t, f, out, fmt.Sprintf("forwarding 127.0.0.1:%d -> backend:8080", port)).Name
			for i := range 3 { // one connection after another, each its own dial
				res, err := exec.CommandContext(ctx, "curl", "-sS", "--max-time", "10", fmt.Sprintf("http://127.0.0.1:%d/pf%d", port, i)).CombinedOutput()
				if err != nil {
					t.Fatalf("%v: curl: %v\n%s\n%s", target, err, res, out.String())
				}
				if r := lastReply(t, string(res)); r.Cluster != "c2" || !strings.HasPrefix(r.Pod, "backend-") || r.Path != fmt.Sprintf("/pf%d", i) {
					t.Errorf("%v: port-forward reached %+v, want backend in c2", target, r)
				}
			}
			interrupt(t, cmd)
			f.Eventually(ctx, 20*time.Second, "the port-forward's session gone", func(ctx context.Context) error {
				_, err := f.Clusters[0].Mirrord.MirrordV1alpha1().MirrordSessions(ns).Get(ctx, session, metav1.GetOptions{})
				if err == nil {
					return fmt.Errorf("session %s still there", session)
				}
				return nil
			})
		}
	})

	t.Run("port-forward -R: nginx's port 80 mirrored to a local server, nginx still answering", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		// Python's own server, which logs each request it gets on stderr.
		var logged framework.SyncBuffer
		srv := exec.Command("python3", "-m", "http.server", strconv.Itoa(port), "--bind", "127.0.0.1")
		srv.Stderr, srv.Dir = &logged, t.TempDir()
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
		cmd, out := f.StartPlugin(f.Clusters[0], "-n", ns, "port-forward", "-t", "deploy/web", "-R", fmt.Sprintf("80:%d", port))
		defer interrupt(t, cmd)
		execSession(ctx, t, f, out, fmt.Sprintf("forwarding the target's port 80 -> 127.0.0.1:%d (mirror)", port))
		pods, err := c2.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("nginx pods: %v %v", pods, err)
		}
		url := "http://" + net.JoinHostPort(pods.Items[0].Status.PodIP, "80") + "/reverse"
		f.Eventually(ctx, 30*time.Second, "a request to nginx mirrored to the local server", func(ctx context.Context) error {
			res, err := exec.CommandContext(ctx, "curl", "-sS", "--max-time", "5", url).CombinedOutput()
			if err != nil || !strings.Contains(string(res), "nginx "+pods.Items[0].Name) {
				return fmt.Errorf("nginx answered %q (%v)", res, err)
			}
			if !strings.Contains(logged.String(), "GET /reverse") {
				return fmt.Errorf("the local server logged %q", logged.String())
			}
			return nil
		})
	})

	t.Run("a config's profile: read from the Primary and applied over the file", func(t *testing.T) {
		name := "e2e-" + ns
		if _, err := f.Clusters[0].Mirrord.MirrordV1alpha1().MirrordClusterProfiles().Create(ctx, &mirrordv1alpha1.MirrordClusterProfile{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: mirrordv1alpha1.ProfileSpec{FeatureAdjustments: []mirrordv1alpha1.FeatureAdjustment{
				{Change: mirrordv1alpha1.ChangeIncomingSteal}, {Change: mirrordv1alpha1.ChangeIncomingOff}, {Change: mirrordv1alpha1.ChangeOutgoingOff},
			}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = f.Clusters[0].Mirrord.MirrordV1alpha1().MirrordClusterProfiles().Delete(context.Background(), name, metav1.DeleteOptions{})
		}()
		cfg := filepath.Join(t.TempDir(), "mirrord.json")
		if err := os.WriteFile(cfg, []byte(`{"target": "deploy/api", "profile": "`+name+`", "feature": {"network": {"incoming": "mirror", "outgoing": true}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd, out := f.StartPlugin(f.Clusters[0], "-n", ns, "exec", "-f", cfg, "--", "sh", "-c", "echo started; exec sleep 60")
		sess := execSession(ctx, t, f, out, "\nstarted")
		interrupt(t, cmd)
		n := sess.Spec.Features.Network
		if !strings.Contains(out.String(), "profile "+name+" applied: incoming off") || sess.Spec.Features.Profile != name ||
			n.Incoming.Mode != mirrordv1alpha1.IncomingModeOff || n.Outgoing.TCP == nil || *n.Outgoing.TCP {
			t.Errorf("the session's features %+v, want the profile's (incoming off, outgoing off):\n%s", n, out.String())
		}
		cfg2 := filepath.Join(t.TempDir(), "mirrord.json")
		if err := os.WriteFile(cfg2, []byte(`{"target": "deploy/api", "profile": "no-such-profile"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "exec", "-f", cfg2, "--", "true")
		if err == nil || !strings.Contains(res, "profile no-such-profile: no MirrordClusterProfile of that name") {
			t.Errorf("exec with a missing profile (%v):\n%s", err, res)
		}
	})

	t.Run("every target kind mirrord knows: job, cron job, service, Argo rollout, labels", func(t *testing.T) {
		// A Job, and a suspended CronJob with a Job of its own (as `kubectl create job
		// --from=cronjob/...` makes): each runs the sample server in c2.
		podSpec := func(kind string) corev1.PodTemplateSpec {
			return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"kind": kind}},
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{
					Name: "run", Image: f.SampleImage, ImagePullPolicy: corev1.PullNever, Args: []string{"serve", "-addr", ":8080"},
					Env: []corev1.EnvVar{{Name: "CLUSTER_NAME", Value: "c2"}},
				}}}}
		}
		if _, err := c2.Kube.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "migrate"},
			Spec: batchv1.JobSpec{Template: podSpec("job")}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cron, err := c2.Kube.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
			Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", Suspend: ptr.To(true),
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: podSpec("cron")}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c2.Kube.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "nightly-manual",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: cron.Name, UID: cron.UID, Controller: ptr.To(true)}}},
			Spec: batchv1.JobSpec{Template: podSpec("cron")}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// An Argo Rollout, its CRD as Argo's names it (no Argo controller runs here: the
		// Rollout refers to the backend Deployment, whose pods it then stands for, as with
		// Argo's workloadRef). c3 has no such CRD, and so no part of the target.
		dir, err := os.MkdirTemp("", "rollout") // kubectl -f splits a path at commas, as the test's name has
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		rollout := filepath.Join(dir, "rollout.yaml")
		if err := os.WriteFile(rollout, []byte(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: rollouts.argoproj.io
spec:
  group: argoproj.io
  names: {kind: Rollout, listKind: RolloutList, plural: rollouts, singular: rollout}
  scope: Namespaced
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := f.Kubectl(c2, "apply", "-f", rollout); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		defer func() { _, _ = f.Kubectl(c2, "delete", "crd", "rollouts.argoproj.io", "--wait=false") }()
		if err := os.WriteFile(rollout, []byte(`apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: storefront
spec:
  selector: {matchLabels: {app: backend}}
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: backend}
`), 0o600); err != nil {
			t.Fatal(err)
		}
		f.Eventually(ctx, 30*time.Second, "the Rollout created (its CRD established)", func(ctx context.Context) error {
			_, err := f.Kubectl(c2, "apply", "-n", ns, "-f", rollout)
			return err
		})
		labelsConfig := filepath.Join(t.TempDir(), "mirrord.json")
		if err := os.WriteFile(labelsConfig, []byte(`{"target": {"labels": {"app": "backend"}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			args       []string
			wantPrefix string
		}{
			{[]string{"-t", "job/migrate"}, "migrate-"},
			{[]string{"-t", "cronjob/nightly"}, "nightly-manual-"},
			{[]string{"-t", "svc/backend"}, "backend-"},
			{[]string{"-t", "rollout/storefront"}, "backend-"},
			{[]string{"-f", labelsConfig}, "backend-"},
		} {
			args := append([]string{"-n", ns, "exec", "--incoming", "off"}, tc.args...)
			args = append(args, "--", "sh", "-c", "echo CLUSTER_NAME=$CLUSTER_NAME; echo host=$(hostname)")
			// The Jobs' pods may still be starting: exec waits for running pods (--timeout).
			out, err := f.RunPlugin(ctx, f.Clusters[0], args...)
			if err != nil {
				t.Errorf("%v: %v\n%s", tc.args, err, out)
				continue
			}
			if !strings.Contains(out, "CLUSTER_NAME=c2") || !strings.Contains(out, "host="+tc.wantPrefix) {
				t.Errorf("%v: want the environment and hostname of a %s* pod in c2:\n%s", tc.args, tc.wantPrefix, out)
			}
		}
	})

	t.Run("Debian's nginx as the target: the command sees the pod's environment and hostname", func(t *testing.T) {
		// nginx sets its process title, which writes over /proc/PID/environ: the environment
		// must come from the container runtime.
		pods, err := c2.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("nginx pods: %v %v", pods, err)
		}
		want := map[string]string{"WEB_ROLE": "frontend", "WITH_SPACES": "a b  c", "DB_PASSWORD": "s3cret=x",
			"HOSTNAME": pods.Items[0].Name, "KUBERNETES_SERVICE_PORT": "443"}
		// Service links: the Services that existed when the pod started.
		for _, svc := range []string{"api", "backend"} {
			s, err := c2.Kube.CoreV1().Services(ns).Get(ctx, svc, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want[strings.ToUpper(svc)+"_SERVICE_HOST"] = s.Spec.ClusterIP
		}
		out, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "exec", "-t", "deploy/web", "--incoming", "off", "--", "sh", "-c", "env; echo uts-hostname=$(hostname)")
		if err != nil {
			t.Fatalf("exec: %v\n%s", err, out)
		}
		got := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				got[k] = v
			}
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q (the pod's)", k, got[k], v)
			}
		}
		if got["uts-hostname"] != pods.Items[0].Name {
			t.Errorf("hostname = %q, want the pod's %q", got["uts-hostname"], pods.Items[0].Name)
		}
		if t.Failed() {
			t.Logf("exec printed:\n%s", out)
		}
	})

	t.Run("a whole-port steal of nginx's probed port: answered locally, the pod Ready throughout", func(t *testing.T) {
		// The kubelet probes port 80 (/healthz). The local server answers 404 there: had the
		// probes been stolen, the pod would turn unready within 3 s.
		server := `import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            self.send_error(404); return
        body = ("local " + self.path).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
s = http.server.HTTPServer(("127.0.0.1", 80), H)
print("listening", flush=True)
s.serve_forever()`
		cmd, out := f.StartPlugin(f.Clusters[0], "-n", ns, "exec", "-t", "deploy/web", "--steal", "--ports", "80", "--", "python3", "-c", server)
		defer interrupt(t, cmd)
		if _, err := out.WaitFor(ctx, "\nlistening", 90*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		pods, err := c2.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("nginx pods: %v %v", pods, err)
		}
		addr := net.JoinHostPort(pods.Items[0].Status.PodIP, "80")
		for deadline := time.Now().Add(6 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			if body := getRaw(t, addr, "/mine", nil); body != "local /mine" {
				t.Fatalf("a request to the stolen port answered %q, want the local server's", body)
			}
			p, err := c2.Kube.CoreV1().Pods(ns).Get(ctx, pods.Items[0].Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range p.Status.Conditions {
				if c.Type == "Ready" && c.Status != "True" {
					t.Fatalf("the pod turned unready during the steal: %s %s", c.Reason, c.Message)
				}
			}
		}
	})

	t.Run("curl's Expect: 100-continue through a filtered steal of nginx, matched and passed on", func(t *testing.T) {
		// Python's http.server answers 100 Continue itself; nginx answers `return 200` without
		// reading the body. Without a session curl gets nginx's 200 at once.
		server := `import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = len(self.rfile.read(int(self.headers["Content-Length"])))
        body = ("local read %d" % n).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
s = http.server.HTTPServer(("127.0.0.1", 80), H)
print("listening", flush=True)
s.serve_forever()`
		cmd, out := f.StartPlugin(f.Clusters[0], "-n", ns, "exec", "-t", "deploy/web", "--steal", "--ports", "80", "--http-header-filter", "^X-User: alice$", "--", "python3", "-c", server)
		defer interrupt(t, cmd)
		if _, err := out.WaitFor(ctx, "\nlistening", 90*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		pods, err := c2.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("nginx pods: %v %v", pods, err)
		}
		url := "http://" + net.JoinHostPort(pods.Items[0].Status.PodIP, "80") + "/upload"
		for _, tc := range []struct{ user, want string }{
			{"alice", "200 local read 4096"},
			{"bob", "200 nginx " + pods.Items[0].Name + " POST /upload\n"},
		} {
			began := time.Now()
			// 4 KiB: curl asks for 100-continue above 1 KiB; the header makes sure.
			res, err := exec.CommandContext(ctx, "curl", "-sS", "--max-time", "10", "-H", "X-User: "+tc.user, "-H", "Expect: 100-continue",
				"--data-binary", strings.Repeat("x", 4096), "-w", "\n%{http_code}", url).CombinedOutput()
			took := time.Since(began)
			if err != nil {
				t.Fatalf("%s: curl: %v\n%s", tc.user, err, res)
			}
			i := strings.LastIndex(string(res), "\n")
			body, code := string(res[:max(i, 0)]), string(res[i+1:])
			if got := code + " " + body; got != tc.want {
				t.Errorf("%s: curl got %q, want %q", tc.user, got, tc.want)
			}
			// curl waits a second for a 100 Continue that never comes: no such stall.
			if took > 900*time.Millisecond {
				t.Errorf("%s: curl took %s", tc.user, took)
			}
			// Node's client sends the body on 'continue' only; Python's skips the 100.
			node := `const http = require("http");
const req = http.request(process.argv[1], {method: "POST", headers: {"X-User": process.argv[2], "Expect": "100-continue", "Content-Length": 4096}});
req.on("continue", () => req.end("x".repeat(4096)));
req.on("response", res => { let b = ""; res.on("data", d => b += d); res.on("end", () => { process.stdout.write(res.statusCode + " " + b); process.exit(0); }); });
req.on("error", e => { console.error(e.message); process.exit(1); });`
			python := `import http.client, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
c.request("POST", u.path, body=b"x" * 4096, headers={"X-User": sys.argv[2], "Expect": "100-continue"})
r = c.getresponse()
sys.stdout.write("%d %s" % (r.status, r.read().decode()))`
			for _, client := range [][]string{{"node", "-e", node, url, tc.user}, {"python3", "-c", python, url, tc.user}} {
				res, err := exec.CommandContext(ctx, client[0], client[1:]...).CombinedOutput()
				if err != nil || string(res) != tc.want {
					t.Errorf("%s: %s's client got %q (%v), want %q", tc.user, client[0], res, err, tc.want)
				}
			}
		}
	})

	t.Run("a config's any_of: mirrord's lowercase baggage filter or a JSON body filter, through nginx", func(t *testing.T) {
		// What mirrord's docs tell users to write: header names as lowercase as W3C's, and a
		// JSONPath over the body. The local server says what body it was given whole.
		server := `import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        b = self.rfile.read(int(self.headers["Content-Length"]))
        body = ("local got %s" % b.decode()).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
s = http.server.HTTPServer(("127.0.0.1", 80), H)
print("listening", flush=True)
s.serve_forever()`
		cfg := filepath.Join(t.TempDir(), "mirrord.json")
		if err := os.WriteFile(cfg, []byte(`{"target": "deployment/web", "feature": {"network": {"incoming": {"mode": "steal", "ports": [80],
  "http_filter": {"any_of": [{"header": "^baggage: .*mirrord-session={{ key }}"}, {"body": "json", "query": "$.users[?@.name == 'alice']", "matches": "admin"}]}}}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("MIRRORD_ENV_KEY", "k1")
		cmd, out := f.StartPlugin(f.Clusters[0], "-n", ns, "exec", "-f", cfg, "--", "python3", "-c", server)
		defer interrupt(t, cmd)
		if _, err := out.WaitFor(ctx, "\nlistening", 90*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		pods, err := c2.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("nginx pods: %v %v", pods, err)
		}
		url := "http://" + net.JoinHostPort(pods.Items[0].Status.PodIP, "80") + "/users"
		nginx := "200 nginx " + pods.Items[0].Name + " POST /users\n"
		alice := `{"users": [{"name": "bob", "role": "dev"}, {"name": "alice", "role": "admin"}]}`
		bob := `{"users": [{"name": "bob", "role": "admin"}]}`
		for _, tc := range []struct{ header, body, want string }{
			{"X-Any: 1", alice, "200 local got " + alice},
			{"X-Any: 1", bob, nginx},
			{"Baggage: team=a,mirrord-session=k1", bob, "200 local got " + bob},
			{"Baggage: mirrord-session=k2", bob, nginx},
		} {
			res, err := exec.CommandContext(ctx, "curl", "-sS", "--max-time", "10", "-H", tc.header, "-H", "Content-Type: application/json",
				"--data-binary", tc.body, "-w", "\n%{http_code}", url).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, res)
			}
			i := strings.LastIndex(string(res), "\n")
			if got := string(res[i+1:]) + " " + string(res[:max(i, 0)]); got != tc.want {
				t.Errorf("%s %s: got %q, want %q", tc.header, tc.body, got, tc.want)
			}
		}
	})

	t.Run("Debian's PostgreSQL as the target, psql as the command", func(t *testing.T) {
		// PostgreSQL sets its process title too; psql reaches the Service db of the Default
		// cluster by its short name, through the target's network.
		f.PostgresApp(ctx, c2, ns, "db", map[string]string{"PGAPP_ROLE": "primary"})
		out, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "exec", "-t", "deploy/db", "--incoming", "off", "--",
			// A Service a moment old may not be routed yet by kube-proxy: a few tries.
			"sh", "-c", `echo "PGAPP_ROLE=$PGAPP_ROLE"; for i in 1 2 3 4 5 6 7 8 9 10; do psql -h db -U postgres -tA -c "select 40+2 as answer" && exit 0; sleep 0.5; done; exit 1`)
		if err != nil {
			t.Fatalf("exec: %v\n%s", err, out)
		}
		if !strings.Contains(out, "PGAPP_ROLE=primary\n") || !strings.Contains(out, "\n42\n") {
			t.Errorf("want the pod's PGAPP_ROLE and psql's answer 42:\n%s", out)
		}
	})

	t.Run("a target the Default cluster lacks: refused at once unless only its traffic is asked for", func(t *testing.T) {
		f.EchoApp(ctx, c3, ns, "only-c3", 1)
		began := time.Now()
		out, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "exec", "-t", "deploy/only-c3", "--", "true")
		if err == nil || !strings.Contains(out, "deployment/only-c3 is not in the Default cluster c2 (found in 1 other cluster(s)), which alone answers for its environment, files, DNS, outgoing traffic: deploy it there, or take only its traffic (--no-env --fs-mode local --no-dns --no-outgoing)") {
			t.Fatalf("exec of a target the Default cluster lacks: %v\n%s", err, out)
		}
		t.Logf("refused after %s", time.Since(began).Round(100*time.Millisecond))
		out, err = f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "exec", "-t", "deploy/only-c3", "--no-env", "--fs-mode", "local", "--no-dns", "--no-outgoing", "--", "true")
		if err != nil {
			t.Fatalf("a traffic-only session of it: %v\n%s", err, out)
		}
	})

	t.Run("a config file sets the session; a bad key stops exec before anything is made", func(t *testing.T) {
		dir := t.TempDir()
		bad := filepath.Join(dir, "bad.json")
		if err := os.WriteFile(bad, []byte(`{"target": "deploy/api", "feature": {"network": {"incomming": "steal"}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		names := func() map[string]bool {
			list, err := f.Clusters[0].Mirrord.MirrordV1alpha1().MirrordSessions(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]bool{}
			for _, s := range list.Items {
				m[s.Name] = true
			}
			return m
		}
		before := names()
		out, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "exec", "-f", bad, "--", "true")
		if err == nil || !strings.Contains(out, `feature.network.incomming: unknown key; did you mean "incoming"?`) {
			t.Errorf("exec with a bad config file (%v):\n%s", err, out)
		}
		for n := range names() {
			if !before[n] {
				t.Errorf("a refused config file created session %s", n)
			}
		}
		// mirrord's env keys, in its order: the target's, the env file's, mapping, override;
		// unset also takes the developer's own variable, whatever its case.
		dotenv := filepath.Join(dir, ".env")
		if err := os.WriteFile(dotenv, []byte("REGION=us\nFROM_FILE=no\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		good := filepath.Join(dir, "mirrord.yaml")
		if err := os.WriteFile(good, []byte("target:\n  path: deployment/api\nfeature:\n  env:\n    override: {FROM_FILE: \"yes\"}\n"+
			"    mapping: {\"^GREET.*\": mapped}\n    unset: [aws_profile]\n    env_file: "+dotenv+"\n  network:\n    incoming: off\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_PROFILE", "dev")
		out, err = f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "exec", "-f", good, "--", "sh", "-c",
			`echo "file=$FROM_FILE cluster=$CLUSTER_NAME greeting=$GREETING region=$REGION aws=${AWS_PROFILE:-unset}"`)
		if err != nil || !strings.Contains(out, "file=yes cluster=c2 greeting=mapped region=us aws=unset") {
			t.Errorf("exec -f (%v):\n%s", err, out)
		}
	})

	t.Run("fs mapping: the target's ConfigMap at a path of this machine, the files beside it still this machine's", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(dir+"/conf", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir+"/conf/local.txt", []byte("this machine's notes\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(dir, "mirrord.json")
		if err := os.WriteFile(cfg, []byte(`{"target": "deploy/api", "feature": {"fs": {"mode": "read", "mapping": {"^`+dir+
			`/conf/(?<f>[a-z]+\\.yaml)$": "/etc/app/${f}"}}, "network": {"incoming": "off"}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "exec", "-f", cfg, "--", "sh", "-c",
			fmt.Sprintf("cat %[1]s/conf/config.yaml; cat %[1]s/conf/local.txt; echo changed > %[1]s/conf/local.txt; ls %[1]s/conf", dir))
		if err != nil || !strings.Contains(out, "mode: remote") || !strings.Contains(out, "this machine's notes") {
			t.Errorf("exec with feature.fs.mapping (%v): want the target's /etc/app/config.yaml and this machine's local.txt:\n%s", err, out)
		}
		if b, err := os.ReadFile(dir + "/conf/local.txt"); string(b) != "changed\n" {
			t.Errorf("the command's write to an unmapped file: %q, %v", b, err)
		}
		if _, err := os.Stat(dir + "/conf/config.yaml"); !os.IsNotExist(err) {
			t.Errorf("the mapped file appeared on this machine: %v", err)
		}
	})

	t.Run("the command's exit code is exec's", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, framework.Plugin(), "--kubeconfig", f.Clusters[0].Kubeconfig, "-n", ns, "exec", "-q", "-t", "deploy/api", "--incoming", "off", "--", "sh", "-c", "exit 42")
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 42 {
			t.Errorf("exit code %d (%v), want 42:\n%s", cmd.ProcessState.ExitCode(), err, out)
		}
	})

	pods := map[string]string{} // cluster → target pod IP:8080
	for _, c := range []*framework.Cluster{c2, c3} {
		list, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
		if err != nil || len(list.Items) != 1 {
			t.Fatalf("%s: target pods: %v", c.Name, err)
		}
		pods[c.Name] = net.JoinHostPort(list.Items[0].Status.PodIP, "8080")
	}

	t.Run("mirror: requests to the target in c2 and c3 reach the local process, the targets still answer", func(t *testing.T) {
		cmd, out := f.StartPlugin(f.Clusters[0], "-n", ns, "exec", "-t", "deploy/api", "--ports", "8080", "--", "python3", "-u", "-m", "http.server", "8080")
		if _, err := out.WaitFor(ctx, "Serving HTTP", 90*time.Second); err != nil {
			t.Fatal(err)
		}
		// One keep-alive connection per target: every request on it is mirrored.
		for cluster, addr := range pods {
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
			for i := range 5 {
				path := fmt.Sprintf("/mirrored-%s-%d", cluster, i)
				resp, err := client.Get("http://" + addr + path)
				if err != nil {
					t.Fatal(err)
				}
				var r echoReply
				_ = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if r.Cluster != cluster || r.Path != path {
					t.Errorf("the target in %s answered %+v", cluster, r)
				}
			}
			client.CloseIdleConnections()
		}
		for cluster := range pods {
			for i := range 5 {
				if _, err := out.WaitFor(ctx, fmt.Sprintf("GET /mirrored-%s-%d ", cluster, i), 10*time.Second); err != nil {
					t.Errorf("mirrored request %d of %s not seen locally: %v", i, cluster, err)
				}
			}
		}
		interrupt(t, cmd)
	})

	t.Run("steal with header filters: two sessions each get only their own requests", func(t *testing.T) {
		server := func(name string) string {
			return fmt.Sprintf(`import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("local-%s " + self.path + " from " + self.client_address[0]).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
s = http.server.HTTPServer(("127.0.0.1", 8080), H)
print("listening", flush=True)
s.serve_forever()`, name)
		}
		acmd, aout := f.StartPlugin(f.Clusters[0], "-n", ns, "exec", "-t", "deploy/api", "--steal", "--http-header-filter", "^X-User: alice$", "--ports", "8080", "--", "python3", "-c", server("alice"))
		bcmd, bout := f.StartPlugin(f.Clusters[0], "-n", ns, "exec", "-t", "deploy/api", "--steal", "--http-header-filter", "^X-User: bob$", "--ports", "8080", "--", "python3", "-c", server("bob"))
		for _, out := range []*framework.SyncBuffer{aout, bout} {
			// At the start of a line: the command line exec echoes contains the word too.
			if _, err := out.WaitFor(ctx, "\nlistening", 90*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		for cluster, addr := range pods {
			// The command sees the caller's own address (the agent's client, this host).
			probe, err := net.Dial("udp", addr)
			if err != nil {
				t.Fatal(err)
			}
			caller := probe.LocalAddr().(*net.UDPAddr).IP.String()
			probe.Close()
			for _, user := range []string{"alice", "bob"} {
				body := getRaw(t, addr, "/"+user, map[string]string{"X-User": user})
				if want := "local-" + user + " /" + user + " from " + caller; body != want {
					t.Errorf("%s: %s's request answered %q, want %q", cluster, user, body, want)
				}
			}
			if r := get(t, addr, "/nobody", nil); r.Cluster != cluster {
				t.Errorf("%s: an unfiltered request answered by %+v, want the target", cluster, r)
			}
		}
		for _, out := range []*framework.SyncBuffer{aout, bout} {
			if strings.Contains(out.String(), "userspace network stack") {
				t.Errorf("incoming connections were not delivered by kernel sockets:\n%s", out.String())
			}
		}
		if t.Failed() {
			t.Logf("alice's exec:\n%s\nbob's exec:\n%s", aout.String(), bout.String())
		}
		interrupt(t, acmd)
		interrupt(t, bcmd)
	})

	t.Run("proxy mode: env, outgoing through the local proxy, incoming to this machine's port", func(t *testing.T) {
		// The Go client honours HTTP_PROXY: the proxy resolves "backend" with the target's
		// search list and connects from the target's network.
		script := fmt.Sprintf(`echo "CLUSTER_NAME=$CLUSTER_NAME"; %s get http://backend:8080/proxied`, echoBin)
		out, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "exec", "--proxy-mode", "-t", "deploy/api", "--incoming", "off", "--", "sh", "-c", script)
		if err != nil {
			t.Fatalf("exec --proxy-mode: %v\n%s", err, out)
		}
		if r := lastReply(t, out); !strings.Contains(out, "CLUSTER_NAME=c2") || r.Cluster != "c2" || r.Path != "/proxied" || !strings.Contains(out, "proxy mode: ") {
			t.Errorf("proxy mode saw:\n%s", out)
		}
		// Mirrored traffic reaches a server on this machine's 127.0.0.1:18181.
		cmd, buf := f.StartPlugin(f.Clusters[0], "-n", ns, "exec", "--proxy-mode", "-t", "deploy/api", "--ports", "8080", "--port-mapping", "8080:18181",
			"--", "python3", "-u", "-m", "http.server", "18181", "--bind", "127.0.0.1")
		if _, err := buf.WaitFor(ctx, "Serving HTTP", 90*time.Second); err != nil {
			t.Fatal(err)
		}
		if r := get(t, pods["c3"], "/mirrored-proxy", nil); r.Cluster != "c3" {
			t.Errorf("the target answered %+v", r)
		}
		if _, err := buf.WaitFor(ctx, "GET /mirrored-proxy ", 10*time.Second); err != nil {
			t.Errorf("the mirrored request did not reach the local server: %v", err)
		}
		interrupt(t, cmd)

		// Another program's port (this test's listener) gets nothing, whatever the mapping.
		other, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		accepted := make(chan struct{}, 1)
		go func() {
			if c, err := other.Accept(); err == nil {
				accepted <- struct{}{}
				c.Close()
			}
		}()
		otherPort := strconv.Itoa(other.Addr().(*net.TCPAddr).Port)
		cmd, buf = f.StartPlugin(f.Clusters[0], "-n", ns, "exec", "--proxy-mode", "-t", "deploy/api", "--ports", "8080", "--port-mapping", "8080:"+otherPort,
			"--", "sleep", "60")
		if _, err := buf.WaitFor(ctx, "running sleep", 90*time.Second); err != nil {
			t.Fatal(err)
		}
		get(t, pods["c3"], "/not-for-others", nil)
		select {
		case <-accepted:
			t.Error("proxy mode delivered the target's traffic to a port the command does not listen on")
		case <-time.After(3 * time.Second):
		}
		interrupt(t, cmd)
	})

	t.Run("sessions lists, status describes, sessions kill ends everywhere", func(t *testing.T) {
		out, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "sessions", "create", "--detach", "--session-ttl", "60", "-t", "deploy/api", "--steal", "--http-path-filter", "^/mine")
		if err != nil {
			t.Fatalf("sessions create: %v\n%s", err, out)
		}
		name := createdRE.FindStringSubmatch(out)[2]
		s, err := getSession(ctx, f, ns, name)
		if err != nil {
			t.Fatal(err)
		}
		watchCmd, watched := f.StartPlugin(f.Clusters[0], "-n", ns, "sessions", "-w", "--no-headers")
		// The table is kubectl get's: the CRD's columns, the same as kubectl get mirrordsessions.
		row := `\s+\S+\s+deployment/api\s+steal\(path=\^/mine\)\s+c2\(D,W\),c3\(W\)\s+2/2\s+Ready\s+`
		table, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "sessions")
		if err != nil || !strings.HasPrefix(table, "NAME ") || !regexp.MustCompile(`(?m)^`+name+row+`\S+$`).MatchString(table) {
			t.Errorf("sessions (%v):\n%s", err, table)
		}
		noAge := regexp.MustCompile(`(?m)\s+\S+$`) // AGE may tick between the two
		if kubectl, err := f.Kubectl(f.Clusters[0], "-n", ns, "get", "mirrordsessions"); err != nil || noAge.ReplaceAllString(kubectl, "") != noAge.ReplaceAllString(table, "") {
			t.Errorf("kubectl get mirrordsessions (%v) shows other columns:\n%s\nthan sessions:\n%s", err, kubectl, table)
		}
		owner := s.Labels[mirrordv1alpha1.LabelOwner]
		for _, tc := range []struct {
			args []string
			want string // a regexp over the whole output
		}{
			{[]string{"-o", "wide"}, `(?m)^NAME\s+OWNER\s+TARGET\s+MODE\s+CLUSTERS\s+READY\s+PHASE\s+TTL\s+AGE\n` + name + row + `60\s+\S+$`},
			{[]string{"-o", "name"}, `^mirrordsession.kubectl-mirrord.io/` + name + `\n$`},
			{[]string{"--no-headers"}, `^` + name + row + `\S+\n$`},
			{[]string{"-o", "jsonpath={.items[*].status.modeDescription}"}, `^steal\(path=\^/mine\)$`},
			{[]string{"-o", "custom-columns=NAME:.metadata.name,OWNER:.spec.owner"}, `^NAME\s+OWNER\n` + name + `\s+` + regexp.QuoteMeta(s.Spec.Owner) + `\n$`},
			{[]string{"-l", mirrordv1alpha1.LabelOwner + "=" + owner + "," + mirrordv1alpha1.LabelTargetName + "=api", "-o", "name"}, `^mirrordsession.kubectl-mirrord.io/` + name + `\n$`},
			{[]string{"-l", mirrordv1alpha1.LabelTargetName + "=web"}, `^No resources found in ` + ns + ` namespace.\n$`},
			{[]string{"--sort-by", ".metadata.creationTimestamp", "-o", "name"}, `^mirrordsession.kubectl-mirrord.io/` + name + `\n$`},
			{[]string{name, "-o", "yaml"}, `(?m)^kind: MirrordSession$`},
			{[]string{"-o", "json"}, `(?s)^\{\s+"apiVersion": "v1",\s+"items": \[.*"kind": "MirrordSession"`},
		} {
			out, err := f.RunPlugin(ctx, f.Clusters[0], append([]string{"-n", ns, "sessions"}, tc.args...)...)
			if err != nil || !regexp.MustCompile(tc.want).MatchString(out) {
				t.Errorf("sessions %s (%v):\n%s\nwant %s", strings.Join(tc.args, " "), err, out, tc.want)
			}
		}
		status, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "status")
		for _, re := range []string{`Roles:\s+Primary\(managementOnly\)`, `(?m)^\s+c2\s+Workload\+Default\s+v\S+\s+.*True`, `(?m)^\s+c3\s+Workload\s+v\S+\s+.*True`, `Sessions in namespace ` + ns + `: 1 \(1 Ready\)`, name} {
			if !regexp.MustCompile(re).MatchString(status) {
				t.Errorf("status does not match %s (%v):\n%s", re, err, status)
			}
		}
		if out, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "sessions", "kill", "no-such-session"); err == nil || !strings.Contains(out, `no session "no-such-session"`) {
			t.Errorf("killing a missing session: %v\n%s", err, out)
		}
		out, err = f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "sessions", "kill", name)
		if err != nil || !strings.Contains(out, "mirrordsession "+ns+"/"+name+" ended") {
			t.Fatalf("sessions kill: %v\n%s", err, out)
		}
		// -w printed the session as it became Ready, then as it went.
		if _, err := watched.WaitFor(ctx, name, 10*time.Second); err != nil || !regexp.MustCompile(`(?m)^`+name+row).MatchString(watched.String()) {
			t.Errorf("sessions -w (%v):\n%s", err, watched.String())
		}
		_ = watchCmd.Process.Kill()
		_ = watchCmd.Wait()
		// kill waits for the Primary's finalizer, so nothing is left the moment it returns.
		if l := leftovers(ctx, f, string(s.UID)); len(l) > 0 {
			t.Errorf("after sessions kill: %v", l)
		}
	})

	t.Run("sessions kill of a running exec stops its command and says why", func(t *testing.T) {
		cmd, out := f.StartPlugin(f.Clusters[0], "-n", ns, "exec", "-t", "deploy/api", "--incoming", "off", "--", "sh", "-c", "echo started; exec sleep 600")
		s := execSession(ctx, t, f, out, "started")
		if o, err := f.RunPlugin(ctx, f.Clusters[0], "-n", ns, "sessions", "kill", s.Name); err != nil {
			t.Fatalf("sessions kill: %v\n%s", err, o)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second): // a heartbeat (every TTL/3) notices
			t.Fatalf("exec still runs 30s after its session was killed:\n%s", out.String())
		}
		if !strings.Contains(out.String(), "was ended (by sessions kill") || cmd.ProcessState.ExitCode() == 0 {
			t.Errorf("exec (exit %d) did not say its session was ended:\n%s", cmd.ProcessState.ExitCode(), out.String())
		}
	})

	t.Run("kill -9 of the CLI: the session and everything it made are gone within 30s", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "pid")
		cmd, out := f.StartPlugin(f.Clusters[0], "-n", ns, "exec", "-t", "deploy/api", "--session-ttl", "10", "--", "sh", "-c", "echo $$ > "+marker+"; echo started; exec sleep 600")
		s := execSession(ctx, t, f, out, "started")
		took := killExecAndWaitGone(ctx, t, f, cmd, s, marker, 30*time.Second, nil)
		t.Logf("gone %s after kill -9", took)
		// Targetless: the agent is a Job and pod of the session's namespace in c2.
		cmd, out = f.StartPlugin(f.Clusters[0], "-n", ns, "exec", "--session-ttl", "10", "--", "sh", "-c", "echo $$ > "+marker+"; echo started; exec sleep 600")
		s = execSession(ctx, t, f, out, "started")
		selector := mirrordv1alpha1.LabelComponent + "=" + mirrordv1alpha1.ComponentTargetlessAgent
		took = killExecAndWaitGone(ctx, t, f, cmd, s, marker, 30*time.Second, func(ctx context.Context) error {
			jobs, err := c2.Kube.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
			if err != nil {
				return err
			}
			pods, err := c2.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
			if err != nil {
				return err
			}
			if len(jobs.Items)+len(pods.Items) > 0 {
				return fmt.Errorf("c2: %d targetless agent Jobs and %d pods left", len(jobs.Items), len(pods.Items))
			}
			return nil
		})
		t.Logf("targetless: gone %s after kill -9", took)
	})
}

// killExecAndWaitGone kill -9s exec (whose command wrote its PID to marker), waits until the
// session and its children and Jobs are gone from every cluster and also (when set) says
// nothing else is left, and checks that the command died with exec. It returns how long
// the cleanup took.
func killExecAndWaitGone(ctx context.Context, t *testing.T, f *framework.Framework, cmd *exec.Cmd, s *mirrordv1alpha1.MirrordSession, marker string, within time.Duration, also func(context.Context) error) time.Duration {
	t.Helper()
	b, _ := os.ReadFile(marker)
	child, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	took := f.Eventually(ctx, within, "session and its parts gone", func(ctx context.Context) error {
		if _, err := getSession(ctx, f, s.Namespace, s.Name); err == nil {
			return fmt.Errorf("session %s still exists", s.Name)
		}
		if l := leftovers(ctx, f, string(s.UID)); len(l) > 0 {
			return fmt.Errorf("left: %v", l)
		}
		if also != nil {
			return also(ctx)
		}
		return nil
	})
	if child > 0 && syscall.Kill(child, 0) == nil {
		t.Errorf("the local command (pid %d) outlived the CLI", child)
	}
	return took
}

var sessionRE = regexp.MustCompile(`session ([a-z0-9-]+)/([a-z0-9-]+) created for `)

// execSession waits until exec's output says want and returns the session exec made.
func execSession(ctx context.Context, t *testing.T, f *framework.Framework, out *framework.SyncBuffer, want string) *mirrordv1alpha1.MirrordSession {
	t.Helper()
	text, err := out.WaitFor(ctx, want, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := sessionRE.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no session name in:\n%s", text)
	}
	s, err := f.Clusters[0].Mirrord.MirrordV1alpha1().MirrordSessions(m[1]).Get(ctx, m[2], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// buildEcho builds the sample app as a static local binary.
func buildEcho(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "echo")
	cmd := exec.Command("go", "build", "-o", bin, "./test/images/echo")
	cmd.Dir = framework.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the sample app: %v\n%s", err, out)
	}
	return bin
}

// lastReply is the last JSON line of out.
func lastReply(t *testing.T, out string) echoReply {
	t.Helper()
	var r echoReply
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if json.Unmarshal([]byte(lines[i]), &r) == nil && r.Pod != "" {
			return r
		}
	}
	t.Errorf("no reply in:\n%s", out)
	return r
}

// noReuse makes a connection per request: a steal takes new connections only (it redirects
// SYNs), so a request on a connection opened before the steal still reaches the target.
var noReuse = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func getRaw(t *testing.T, addr, path string, headers map[string]string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := noReuse.Do(req)
	if err != nil {
		t.Errorf("GET %s%s: %v", addr, path, err)
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

func get(t *testing.T, addr, path string, headers map[string]string) echoReply {
	t.Helper()
	var r echoReply
	body := getRaw(t, addr, path, headers)
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Errorf("GET %s%s: %q is not the target's answer", addr, path, body)
	}
	return r
}

// interrupt ends an exec as Ctrl-C would and waits for it.
func interrupt(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Errorf("exec did not end 20s after SIGINT")
		_ = cmd.Process.Kill()
	}
}
