//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/member"
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
	_, _ = f.Kubectl(c, "delete", "mirrordclusters", "--all", "--wait=true")
	f.Install(ctx, c, "single-cluster")
	ns := f.Namespace(c)
	deployWithConfig(ctx, t, f, c, ns)

	_, out, name := startSession(t, f, ns, "-t", "deploy/api")
	if _, err := out.WaitFor(ctx, "ready; heartbeating", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	s, err := getSession(ctx, f, ns, name)
	if err != nil || len(s.Status.Clusters) != 1 {
		t.Fatalf("session: %+v %v", s, err)
	}
	child, err := c.Mirrord.MirrordV1alpha1().MirrordClusterSessions(controllerNS).Get(ctx, s.Status.Clusters[0].ChildName, metav1.GetOptions{})
	if err != nil || len(child.Status.Agents) != 1 || child.Status.Agents[0].Address == "" {
		t.Fatalf("child: %+v %v", child.Status, err)
	}
	ag := child.Status.Agents[0]
	secret, err := c.Kube.CoreV1().Secrets(controllerNS).Get(ctx, member.AgentKeySecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := member.AgentToken(secret.Data["key"], ag.Job)
	session := controllerNS + "/" + child.Name

	// Pod IPs are routed from this host on the rig.
	connect := func(tok string) (*protocol.Client, error) {
		conn, err := net.DialTimeout("tcp", ag.Address, 5*time.Second)
		if err != nil {
			return nil, err
		}
		sess, err := protocol.Dial(conn, protocol.Hello{Session: session, Token: tok})
		if err != nil {
			conn.Close()
			return nil, err
		}
		return protocol.NewClient(sess), nil
	}
	if _, err := connect("not-the-token"); err == nil || !strings.Contains(err.Error(), "wrong session token") {
		t.Errorf("a wrong token: %v", err)
	}
	cl, err := connect(token)
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
	conn, err := cl.Dial("tcp", net.JoinHostPort(svc.Spec.ClusterIP, "8080"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /through-the-agent HTTP/1.0\r\nHost: api\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	raw, _ := io.ReadAll(conn)
	_, body, _ := strings.Cut(string(raw), "\r\n\r\n")
	var reply struct{ Path, Cluster string }
	if err := json.Unmarshal([]byte(body), &reply); err != nil || reply.Path != "/through-the-agent" {
		t.Errorf("the Service through the agent answered %q (%v)", raw, err)
	}
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
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1,
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
