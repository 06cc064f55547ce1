package framework

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
)

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// Plugin is the kubectl-mirrord binary under test (MIRRORD_E2E_PLUGIN, default bin/kubectl-mirrord).
func Plugin() string {
	return envOr("MIRRORD_E2E_PLUGIN", filepath.Join(RepoRoot(), "bin", "kubectl-mirrord"))
}

// Rig is the local rig's binary (MIRRORD_E2E_RIG), empty when the clusters are not the rig's.
func Rig() string { return os.Getenv("MIRRORD_E2E_RIG") }

// Install installs a role on c the way an admin does, with `kubectl mirrord install` (the
// image under test, c's name as the cluster name, the rig's PostgreSQL and MariaDB as the
// images of database branches), which waits for the controller.
func (f *Framework) Install(ctx context.Context, c *Cluster, overlay string) {
	f.t.Helper()
	if out, err := f.RunPlugin(ctx, c, "install", "--role", overlay, "--cluster-name", c.Name, "--image", f.Image, "--timeout", "2m",
		"--controller-flag=--db-branch-image=PostgreSQL="+f.PostgresImage, "--controller-flag=--db-branch-image=MariaDB="+f.MariaDBImage,
		"--controller-flag=--db-branch-image=MySQL="+f.MariaDBImage); err != nil {
		f.t.Fatalf("%s: kubectl mirrord install --role %s: %v\n%s", c.Name, overlay, err, out)
	}
}

// InstallAlone installs every role on c (the single-cluster overlay) with no member
// cluster registered: a Primary that is its own only Workload and Default.
func (f *Framework) InstallAlone(ctx context.Context, c *Cluster) {
	f.t.Helper()
	_, _ = f.Kubectl(c, "delete", "mirrordclusters", "--all", "--wait=true")
	f.Install(ctx, c, "single-cluster")
}

// Uninstall removes kubectl-mirrord from c with `kubectl mirrord uninstall`, ending its
// sessions.
func (f *Framework) Uninstall(ctx context.Context, c *Cluster) string {
	f.t.Helper()
	out, err := f.RunPlugin(ctx, c, "uninstall", "--force")
	if err != nil {
		f.t.Fatalf("%s: kubectl mirrord uninstall: %v\n%s", c.Name, err, out)
	}
	return out
}

// RunPlugin runs kubectl-mirrord against c and returns its combined output.
func (f *Framework) RunPlugin(ctx context.Context, c *Cluster, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, Plugin(), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// StartPlugin starts kubectl-mirrord against c in the background; the test ends it.
func (f *Framework) StartPlugin(c *Cluster, args ...string) (*exec.Cmd, *SyncBuffer) {
	f.t.Helper()
	return f.StartPluginWith(c.Kubeconfig, args...)
}

// StartPluginWith is StartPlugin with the kubeconfig file given.
func (f *Framework) StartPluginWith(kubeconfig string, args ...string) (*exec.Cmd, *SyncBuffer) {
	f.t.Helper()
	out := &SyncBuffer{}
	cmd := exec.Command(Plugin(), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, out
}

// SharedNamespace creates one namespace name in every given cluster (a session lives in the
// Primary's namespace named like the target's).
func (f *Framework) SharedNamespace(cs ...*Cluster) string {
	f.t.Helper()
	name := "e2e-" + rand.String(6)
	for _, c := range cs {
		if _, err := c.Kube.CoreV1().Namespaces().Create(f.t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			f.t.Fatalf("%s: create namespace: %v", c.Name, err)
		}
		err := wait.PollUntilContextTimeout(f.t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := c.Kube.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
			return err == nil, nil
		})
		if err != nil {
			f.t.Fatalf("%s: namespace %s has no default service account", c.Name, name)
		}
		f.mu.Lock()
		f.namespaces[c] = append(f.namespaces[c], name)
		f.mu.Unlock()
	}
	return name
}

// Eventually polls cond every 200ms until it returns nil or timeout passes, then fails the
// test with cond's last error. When it waited 10 s or more it logs what it waited on: each
// error cond returned, from when.
func (f *Framework) Eventually(ctx context.Context, timeout time.Duration, what string, cond func(ctx context.Context) error) time.Duration {
	f.t.Helper()
	start := time.Now()
	var last error
	var waited []string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		prev := last
		last = cond(ctx)
		if last != nil && (prev == nil || prev.Error() != last.Error()) && len(waited) < 20 {
			waited = append(waited, fmt.Sprintf("%5.1fs %v", time.Since(start).Seconds(), last))
		}
		return last == nil, nil
	})
	if err != nil {
		// The last error is often the deadline cutting the last try short: show the way here.
		f.t.Fatalf("%s: not within %s: %v; waited on:\n%s", what, timeout, last, strings.Join(waited, "\n"))
	}
	took := time.Since(start)
	if took >= 10*time.Second {
		f.t.Logf("%s took %s, waiting on:\n%s", what, took.Round(100*time.Millisecond), strings.Join(waited, "\n"))
	}
	return took
}

// SyncBuffer is an output buffer safe to read while a process writes it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitFor waits until the buffer contains substr and returns the buffer's text.
func (s *SyncBuffer) WaitFor(ctx context.Context, substr string, timeout time.Duration) (string, error) {
	var text string
	// Polled often: benchmarks time commands by their output.
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		text = s.String()
		return strings.Contains(text, substr), nil
	})
	if err != nil {
		return text, fmt.Errorf("output never contained %q:\n%s", substr, text)
	}
	return text, nil
}
