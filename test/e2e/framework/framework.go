// Package framework is the e2e harness. It receives the kubeconfigs of N clusters from
// the environment (the local rig and kind both provide them), hands each test typed
// clients and fresh namespaces, and, when a test fails, saves what explains it: events,
// pod descriptions and logs of the test's namespaces, and the clusters' component logs.
//
//	MIRRORD_E2E_KUBECONFIGS   comma-separated kubeconfig paths, cluster 1 first (required)
//	MIRRORD_E2E_INTERNAL_KUBECONFIGS  the same clusters as pods of other clusters reach
//	                          them (kind); default: the addresses above (the local rig)
//	MIRRORD_E2E_KUBECTL       kubectl binary (default: kubectl on PATH)
//	MIRRORD_E2E_IMAGE         the project's image (default mirrord.local/kubectl-mirrord:dev)
//	MIRRORD_E2E_SAMPLE_IMAGE  the sample app image (default mirrord.local/echo:rig)
//	MIRRORD_E2E_COLLECT_LOGS  command that copies component logs into the directory it is given
//	MIRRORD_E2E_ARTIFACTS     where failure artifacts go (default _artifacts)
package framework

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
)

// Cluster is one cluster under test.
type Cluster struct {
	// Name is c1, c2, ... in the order the kubeconfigs were given.
	Name       string
	Kubeconfig string
	// InternalServer is the API server URL as pods of the other clusters reach it.
	InternalServer string
	Config         *rest.Config
	Kube           kubernetes.Interface
	Mirrord        versioned.Interface
}

// Framework is one test's view of the clusters.
type Framework struct {
	t           *testing.T
	Clusters    []*Cluster
	KubectlPath string
	Image       string
	SampleImage string
	// NginxImage and PostgresImage are Debian's nginx and PostgreSQL (test/images), real
	// servers as targets.
	NginxImage    string
	PostgresImage string
	// MariaDBImage is Debian's MariaDB (test/images/mariadb): a target's database, and the
	// image of MariaDB and MySQL branches.
	MariaDBImage string
	artifacts    string

	mu         sync.Mutex
	namespaces map[*Cluster][]string
}

// New returns a framework for t. A framework belongs to one test: subtests, which may run
// in parallel and fail on their own, each call New with their own t.
func New(t *testing.T) *Framework {
	t.Helper()
	paths := os.Getenv("MIRRORD_E2E_KUBECONFIGS")
	if paths == "" {
		t.Fatal("MIRRORD_E2E_KUBECONFIGS is not set: run the e2e suite with `make test` or `make e2e` after `make clusters`")
	}
	f := &Framework{
		t:             t,
		KubectlPath:   envOr("MIRRORD_E2E_KUBECTL", "kubectl"),
		Image:         envOr("MIRRORD_E2E_IMAGE", "mirrord.local/kubectl-mirrord:dev"),
		SampleImage:   envOr("MIRRORD_E2E_SAMPLE_IMAGE", "mirrord.local/echo:rig"),
		NginxImage:    envOr("MIRRORD_E2E_NGINX_IMAGE", "mirrord.local/nginx:rig"),
		PostgresImage: envOr("MIRRORD_E2E_POSTGRES_IMAGE", "mirrord.local/postgres:rig"),
		MariaDBImage:  envOr("MIRRORD_E2E_MARIADB_IMAGE", "mirrord.local/mariadb:rig"),
		artifacts:     envOr("MIRRORD_E2E_ARTIFACTS", "_artifacts"),
		namespaces:    map[*Cluster][]string{},
	}
	internal := strings.Split(os.Getenv("MIRRORD_E2E_INTERNAL_KUBECONFIGS"), ",")
	for i, p := range strings.Split(paths, ",") {
		cfg, err := clientcmd.BuildConfigFromFlags("", p)
		if err != nil {
			t.Fatalf("kubeconfig %s: %v", p, err)
		}
		cfg.QPS, cfg.Burst = 50, 100
		c := &Cluster{Name: fmt.Sprintf("c%d", i+1), Kubeconfig: p, Config: cfg, InternalServer: cfg.Host}
		if i < len(internal) && internal[i] != "" {
			icfg, err := clientcmd.BuildConfigFromFlags("", internal[i])
			if err != nil {
				t.Fatalf("internal kubeconfig %s: %v", internal[i], err)
			}
			c.InternalServer = icfg.Host
		}
		if c.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
			t.Fatal(err)
		}
		if c.Mirrord, err = versioned.NewForConfig(cfg); err != nil {
			t.Fatal(err)
		}
		f.Clusters = append(f.Clusters, c)
	}
	t.Cleanup(f.cleanup)
	return f
}

// RequireClusters skips the test unless at least n clusters are given.
func (f *Framework) RequireClusters(n int) {
	if len(f.Clusters) < n {
		f.t.Skipf("needs %d clusters, have %d", n, len(f.Clusters))
	}
}

// Context returns a context that ends with the test or after timeout.
func (f *Framework) Context(timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(f.t.Context(), timeout)
	f.t.Cleanup(cancel)
	return ctx
}

// Namespace creates a fresh namespace in c, removed when the test ends.
func (f *Framework) Namespace(c *Cluster) string {
	f.t.Helper()
	name := "e2e-" + rand.String(6)
	_, err := c.Kube.CoreV1().Namespaces().Create(f.t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatalf("%s: create namespace: %v", c.Name, err)
	}
	// Pods need the namespace's default service account, made asynchronously.
	err = wait.PollUntilContextTimeout(f.t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := c.Kube.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		f.t.Fatalf("%s: namespace %s has no default service account: %v", c.Name, name, err)
	}
	f.mu.Lock()
	f.namespaces[c] = append(f.namespaces[c], name)
	f.mu.Unlock()
	return name
}

// Kubectl runs kubectl against c and returns its combined output.
func (f *Framework) Kubectl(c *Cluster, args ...string) (string, error) {
	cmd := exec.Command(f.KubectlPath, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (f *Framework) cleanup() {
	// Use a fresh context: the test's own is already cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if f.t.Failed() {
		f.saveArtifacts(ctx)
	}
	for c, nss := range f.namespaces {
		for _, ns := range nss {
			_ = c.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		}
	}
}

// saveArtifacts writes what explains a failure under ARTIFACTS/<test name>/.
func (f *Framework) saveArtifacts(ctx context.Context) {
	dir := filepath.Join(f.artifacts, strings.ReplaceAll(f.t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Logf("artifacts: %v", err)
		return
	}
	// Every cluster's system namespaces too: the controllers' and agents' logs explain most
	// failures of a session.
	for _, c := range f.Clusters {
		nss := f.namespaces[c]
		for _, ns := range append(append([]string(nil), nss...), "kube-system", "mirrord-system") {
			out, _ := f.Kubectl(c, "get", "events,pods,jobs,services,endpointslices", "-n", ns, "-o", "wide")
			describe, _ := f.Kubectl(c, "describe", "pods", "-n", ns)
			_ = os.WriteFile(filepath.Join(dir, c.Name+"-"+ns+".txt"), []byte(out+"\n"+describe), 0o644)
			pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				continue
			}
			for _, p := range pods.Items {
				for _, ctr := range p.Spec.Containers {
					b, err := c.Kube.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: ctr.Name}).DoRaw(ctx)
					if err == nil {
						_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%s-%s-%s.log", c.Name, ns, p.Name, ctr.Name)), b, 0o644)
					}
				}
			}
		}
	}
	if collect := os.Getenv("MIRRORD_E2E_COLLECT_LOGS"); collect != "" {
		args := append(strings.Fields(collect), filepath.Join(dir, "components"))
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			f.t.Logf("collect component logs: %v: %s", err, out)
		}
	}
	f.t.Logf("failure artifacts saved in %s", dir)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
