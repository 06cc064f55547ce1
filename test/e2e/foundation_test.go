//go:build e2e

// The foundation suite: what every later feature stands on must hold in every cluster.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/session"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

// A Job running the project's image completes in each cluster: the node pulled the image by
// reference (on the rig, from its registry, as a real cluster pulls a release), and its
// binary runs.
func TestProjectImageRunsAsJob(t *testing.T) {
	for i, c := range framework.New(t).Clusters {
		t.Run(c.Name, func(t *testing.T) {
			f := framework.New(t)
			c := f.Clusters[i]
			ctx := f.Context(2 * time.Minute)
			ns := f.Namespace(c)
			_, err := c.Kube.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{
				ObjectMeta: metav1.ObjectMeta{Name: "version"},
				Spec: batchv1.JobSpec{
					BackoffLimit: ptr.To[int32](0),
					Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
						RestartPolicy: corev1.RestartPolicyNever,
						Containers: []corev1.Container{{
							Name: "mirrord", Image: f.Image, ImagePullPolicy: corev1.PullIfNotPresent,
							Args: []string{"version", "-o", "json"},
						}},
					}},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			f.WaitForJob(ctx, c, ns, "version")
			pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=version"})
			if err != nil || len(pods.Items) != 1 {
				t.Fatalf("want the job's one pod, got %v (%v)", pods, err)
			}
			pod := pods.Items[0]
			repo, _, byDigest := strings.Cut(f.Image, "@")
			if cs := pod.Status.ContainerStatuses; byDigest && (len(cs) != 1 || cs[0].ImageID != f.Image) {
				t.Errorf("the container's image: %+v, want %s exactly", cs, f.Image)
			}
			events, err := c.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod.Name + ",reason=Pulled"})
			if err != nil || len(events.Items) == 0 || !strings.Contains(events.Items[0].Message, repo) {
				t.Errorf("the kubelet's Pulled event: %+v (%v), want it naming %s", events, err, repo)
			} else {
				t.Logf("%s: %s", c.Name, events.Items[0].Message)
			}
			out, err := c.Kube.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var info struct{ Version, Platform string }
			if err := json.Unmarshal(out, &info); err != nil || info.Version == "" || info.Platform != "linux/amd64" {
				t.Fatalf("kubectl-mirrord version in the image printed %q (%v)", out, err)
			}
		})
	}
}

// A pod resolves a Service by its DNS name (CoreDNS) and gets an answer from its pod
// (kube-proxy), in every cluster at once.
func TestServiceDNS(t *testing.T) {
	for i, c := range framework.New(t).Clusters {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			f := framework.New(t)
			c := f.Clusters[i]
			ctx := f.Context(3 * time.Minute)
			ns := f.Namespace(c)
			f.EchoApp(ctx, c, ns, "web", 1)
			url := fmt.Sprintf("http://web.%s.svc.cluster.local:8080/dns-check", ns)
			out := f.RunToCompletion(ctx, c, ns, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "client"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "client", Image: f.SampleImage, ImagePullPolicy: corev1.PullNever, Args: []string{"get", "-retry-for", "30s", url},
				}}},
			})
			// The log ends with the reply; lines before it are the probe's retries.
			lines := strings.Split(strings.TrimSpace(out), "\n")
			var reply struct{ Pod, Cluster, Path string }
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &reply); err != nil {
				t.Fatalf("GET %s answered %q: %v", url, out, err)
			}
			if reply.Path != "/dns-check" || reply.Cluster != c.Name || !strings.HasPrefix(reply.Pod, "web-") {
				t.Fatalf("GET %s was answered by %+v, want a web pod of %s", url, reply, c.Name)
			}
		})
	}
}

// A pod of cluster 1, using a kubeconfig from a Secret (a ServiceAccount token of
// cluster 2), lists the namespaces of cluster 2, as the Primary's controller will.
func TestPodReachesAnotherClustersAPIServer(t *testing.T) {
	f := framework.New(t)
	f.RequireClusters(2)
	c1, c2 := f.Clusters[0], f.Clusters[1]
	ctx := f.Context(3 * time.Minute)
	ns1, ns2 := f.Namespace(c1), f.Namespace(c2)

	// In cluster 2: a ServiceAccount allowed to list namespaces, and a token for it.
	sa, err := c2.Kube.CoreV1().ServiceAccounts(ns2).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "remote-reader"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + ns2},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view-namespaces-" + ns2},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: ns2}},
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "view-namespaces-" + ns2},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"list"}}},
	}
	if _, err := c2.Kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c2.Kube.RbacV1().ClusterRoles().Delete(t.Context(), role.Name, metav1.DeleteOptions{}) })
	if _, err := c2.Kube.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c2.Kube.RbacV1().ClusterRoleBindings().Delete(t.Context(), binding.Name, metav1.DeleteOptions{})
	})
	tok, err := c2.Kube.CoreV1().ServiceAccounts(ns2).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(c2.Config.CAFile)
	if err != nil && len(c2.Config.CAData) == 0 {
		t.Fatalf("cluster 2's CA: %v", err)
	}
	if len(c2.Config.CAData) > 0 {
		ca = c2.Config.CAData
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c2"] = &clientcmdapi.Cluster{Server: c2.InternalServer, CertificateAuthorityData: ca}
	cfg.AuthInfos["reader"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["c2"] = &clientcmdapi.Context{Cluster: "c2", AuthInfo: "reader"}
	cfg.CurrentContext = "c2"
	kubeconfig, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}

	// In cluster 1: the kubeconfig as a Secret, mounted into a pod that lists namespaces.
	if _, err := c1.Kube.CoreV1().Secrets(ns1).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "c2-kubeconfig"},
		Data:       map[string][]byte{"kubeconfig": kubeconfig},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out := f.RunToCompletion(ctx, c1, ns1, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "lister"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "lister", Image: f.SampleImage, ImagePullPolicy: corev1.PullNever,
				Args:         []string{"namespaces", "-kubeconfig", "/kube/kubeconfig"},
				VolumeMounts: []corev1.VolumeMount{{Name: "kube", MountPath: "/kube", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: "kube", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "c2-kubeconfig"}}}},
		},
	})
	names := strings.Fields(out)
	// ns2 exists only in cluster 2, ns1 only in cluster 1: the list must be cluster 2's.
	if !contains(names, ns2) || contains(names, ns1) {
		t.Fatalf("pod in c1 listed %v; want cluster 2's namespaces (with %s, without %s)", names, ns2, ns1)
	}
}

// Once the CRDs are applied, kubectl shows MirrordSessions with readable columns and
// knows their short name.
func TestMirrordSessionCRDColumns(t *testing.T) {
	f := framework.New(t)
	c := f.Clusters[0]
	ctx := f.Context(2 * time.Minute)
	crds, err := filepath.Glob("../../manifests/crds/kubectl-mirrord.io_*.yaml")
	if err != nil || len(crds) != 10 {
		t.Fatalf("want 10 CRD manifests, found %v (%v)", crds, err)
	}
	// CRDs an installation already has stay; the ones this test adds go when it ends.
	_, err = c.Mirrord.MirrordV1alpha1().MirrordSessions("default").List(ctx, metav1.ListOptions{Limit: 1})
	installed := err == nil
	for _, crd := range crds {
		if out, err := f.Kubectl(c, "apply", "--server-side", "-f", crd); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	if !installed {
		t.Cleanup(func() {
			for _, crd := range crds {
				_, _ = f.Kubectl(c, "delete", "--ignore-not-found", "-f", crd)
			}
		})
	}
	for _, crd := range crds {
		if out, err := f.Kubectl(c, "wait", "--for=condition=Established", "--timeout=60s", "-f", crd); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	ns := f.Namespace(c)
	// The status below is written by hand: a controller installed by an earlier run must not
	// write it too. Pause it for this test.
	if _, err := c.Kube.AppsV1().Deployments(controllerNS).Get(ctx, "mirrord-controller", metav1.GetOptions{}); err == nil {
		if out, err := f.Kubectl(c, "-n", controllerNS, "scale", "deploy/mirrord-controller", "--replicas=0"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		t.Cleanup(func() { _, _ = f.Kubectl(c, "-n", controllerNS, "scale", "deploy/mirrord-controller", "--replicas=1") })
		f.Eventually(ctx, time.Minute, "no controller pod", func(ctx context.Context) error {
			pods, err := c.Kube.CoreV1().Pods(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: mirrordv1alpha1.LabelComponent + "=controller"})
			if err != nil || len(pods.Items) > 0 {
				return fmt.Errorf("%d controller pods (%v)", len(pods.Items), err)
			}
			return nil
		})
	}
	// The owner is whoever creates it: a Primary's admission policy, if installed, insists.
	owner, err := session.Whoami(ctx, c.Kube)
	if err != nil {
		t.Fatal(err)
	}
	sess := &mirrordv1alpha1.MirrordSession{
		ObjectMeta: metav1.ObjectMeta{Name: "alice-api"},
		Spec: mirrordv1alpha1.MirrordSessionSpec{
			Target:      mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: "api", Namespace: ns},
			Owner:       owner.Name,
			OwnerGroups: owner.Groups,
			Features: mirrordv1alpha1.Features{Network: mirrordv1alpha1.NetworkFeature{
				Incoming: mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeSteal},
			}},
		},
	}
	created, err := c.Mirrord.MirrordV1alpha1().MirrordSessions(ns).Create(ctx, sess, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Gone before the paused controller returns (cleanups run last-registered first).
	t.Cleanup(func() {
		_ = c.Mirrord.MirrordV1alpha1().MirrordSessions(ns).Delete(context.Background(), sess.Name, metav1.DeleteOptions{})
	})
	if created.Spec.TTLSeconds != 30 {
		t.Errorf("ttlSeconds defaulted to %d, want 30 (the CRD's default)", created.Spec.TTLSeconds)
	}
	created.Status = mirrordv1alpha1.MirrordSessionStatus{
		Phase: mirrordv1alpha1.SessionReady, TargetDescription: "deploy/api", ClustersReady: "2/2",
		ModeDescription: "steal", ClustersDescription: "c2(D,W),c3(W)",
	}
	if _, err := c.Mirrord.MirrordV1alpha1().MirrordSessions(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, resource := range []string{"mirrordsessions", "mss"} {
		out, err := f.Kubectl(c, "get", resource, "-n", ns)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("kubectl get %s printed %q, want a header and one row", resource, out)
		}
		if got, want := strings.Fields(lines[0]), []string{"NAME", "OWNER", "TARGET", "MODE", "CLUSTERS", "READY", "PHASE", "AGE"}; !equal(got, want) {
			t.Errorf("kubectl get %s header = %v, want %v", resource, got, want)
		}
		if got := strings.Fields(lines[1]); len(got) != 8 || !equal(got[:7], []string{"alice-api", owner.Name, "deploy/api", "steal", "c2(D,W),c3(W)", "2/2", "Ready"}) {
			t.Errorf("kubectl get %s row = %v", resource, got)
		}
	}
	// A session with an invalid mode is refused by the CRD's schema.
	bad := sess.DeepCopy()
	bad.Name = "bad"
	bad.Spec.Features.Network.Incoming.Mode = "copy"
	if _, err := c.Mirrord.MirrordV1alpha1().MirrordSessions(ns).Create(ctx, bad, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "Unsupported value") {
		t.Errorf("creating a session with incoming mode %q: err = %v, want a schema error", "copy", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func equal(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}
