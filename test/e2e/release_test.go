//go:build e2e

package e2e

import (
	"archive/tar"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

// TestReleaseImage publishes a release the way `make release` does (hack/release, to the
// rig's registry): one index with a linux/amd64 and a linux/arm64 image, each holding the
// binary and iptables of its own architecture (Debian's packages); a node pulls the index
// by digest, gets its platform's image, and its iptables runs.
func TestReleaseImage(t *testing.T) {
	f := framework.New(t)
	if framework.Rig() == "" || os.Getenv("MIRRORD_E2E_DIST") == "" {
		t.Skip("needs the rig's registry and make dist's binaries (MIRRORD_E2E_RIG, MIRRORD_E2E_DIST)")
	}
	c := f.Clusters[0]
	ctx := f.Context(5 * time.Minute)
	dist := t.TempDir()
	archives, _ := filepath.Glob(filepath.Join(os.Getenv("MIRRORD_E2E_DIST"), "*.tar.gz"))
	for _, a := range archives {
		if err := os.Symlink(a, filepath.Join(dist, filepath.Base(a))); err != nil {
			t.Fatal(err)
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "go", "run", "./hack/release", "-version", "v0.0.0-e2e", "-registry", "172.30.0.1:5000",
		"-insecure", "-check-base=false", "-bin", filepath.Join(framework.RepoRoot(), "bin", "dist"), "-dist", dist,
		"-cache", filepath.Join(cache, "kubectl-mirrord", "release"))
	cmd.Dir = framework.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/release: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dist, "IMAGE"))
	if err != nil {
		t.Fatal(err)
	}
	image := strings.TrimSpace(string(b))
	if sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS")); err != nil || strings.Count(string(sums), ".tar.gz\n") != len(archives) {
		t.Errorf("SHA256SUMS (%v):\n%s", err, sums)
	}

	ref, err := name.NewDigest(image, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for _, d := range m.Manifests {
		want, ok := machines[d.Platform.Architecture]
		if !ok || d.Platform.OS != "linux" {
			t.Errorf("unexpected platform %+v", d.Platform)
			continue
		}
		delete(machines, d.Platform.Architecture)
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"usr/local/bin/kubectl-mirrord", "usr/sbin/xtables-legacy-multi"} {
			if got, err := elfMachine(img, p); err != nil || got != want {
				t.Errorf("linux/%s: %s is for %v (%v), want %v", d.Platform.Architecture, p, got, err, want)
			}
		}
	}
	if len(machines) > 0 {
		t.Errorf("the index lacks %v", machines)
	}

	// This node's platform out of the index, pulled from the registry: its iptables runs.
	ns := f.Namespace(c)
	_, err = c.Kube.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "iptables"},
		Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](0), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "iptables", Image: image, Command: []string{"/usr/sbin/iptables-legacy", "-V"}}},
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.WaitForJob(ctx, c, ns, "iptables")
}

// elfMachine is the machine of the ELF file at path in img.
func elfMachine(img v1.Image, path string) (elf.Machine, error) {
	tr := tar.NewReader(mutate.Extract(img))
	for {
		hdr, err := tr.Next()
		if err != nil {
			return 0, err
		}
		if hdr.Name != path {
			continue
		}
		var h [20]byte // the ELF header up to e_machine (little-endian on both platforms)
		if _, err := io.ReadFull(tr, h[:]); err != nil {
			return 0, err
		}
		if string(h[:4]) != elf.ELFMAG {
			return 0, fmt.Errorf("not an ELF file")
		}
		return elf.Machine(binary.LittleEndian.Uint16(h[18:])), nil
	}
}
