//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestKrewInstall installs the plugin as users do, with the real krew (built from the module
// proxy, make krew), offline from the archives `make dist` built: every platform's archive
// installs, and on this machine `kubectl mirrord` runs through kubectl. krew's own validator
// checks the manifest (its install step downloads, so it is skipped; the installs here do it).
func TestKrewInstall(t *testing.T) {
	dist, krew, validator, kubectl := os.Getenv("MIRRORD_E2E_DIST"), os.Getenv("MIRRORD_E2E_KREW"), os.Getenv("MIRRORD_E2E_KREW_VALIDATOR"), os.Getenv("MIRRORD_E2E_KUBECTL")
	if dist == "" || krew == "" || validator == "" || kubectl == "" {
		t.Skip("needs MIRRORD_E2E_DIST (make dist), MIRRORD_E2E_KREW and MIRRORD_E2E_KREW_VALIDATOR (make krew), MIRRORD_E2E_KUBECTL")
	}
	manifest := filepath.Join(dist, "mirrord.yaml")
	if out, err := exec.Command(validator, "-manifest", manifest, "-skip-install").CombinedOutput(); err != nil {
		t.Fatalf("krew's validator refuses the manifest: %v\n%s", err, out)
	}
	var m struct {
		Metadata struct{ Name string }
		Spec     struct{ Version string }
	}
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &m); err != nil || m.Metadata.Name != strings.TrimSuffix(filepath.Base(manifest), ".yaml") {
		t.Fatalf("the manifest's name %q must be its file's name (%v)", m.Metadata.Name, err)
	}

	// kubectl finds krew as a plugin, and the installed plugin in KREW_ROOT/bin.
	bin := t.TempDir()
	for name, target := range map[string]string{"kubectl": kubectl, "kubectl-krew": krew} {
		if err := os.Symlink(target, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, goos := range []string{"linux", "darwin"} {
		for _, arch := range []string{"amd64", "arm64"} {
			t.Run(goos+"/"+arch, func(t *testing.T) {
				root := t.TempDir()
				run := func(args ...string) string {
					t.Helper()
					cmd := exec.Command("kubectl", args...)
					cmd.Env = []string{"PATH=" + bin + ":" + filepath.Join(root, "bin") + ":/usr/bin:/bin", "HOME=" + root,
						"KREW_ROOT=" + root, "KREW_OS=" + goos, "KREW_ARCH=" + arch}
					out, err := cmd.CombinedOutput()
					if err != nil {
						t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
					}
					return string(out)
				}
				archive := filepath.Join(dist, fmt.Sprintf("kubectl-mirrord_%s_%s.tar.gz", goos, arch))
				run("krew", "install", "--manifest="+manifest, "--archive="+archive)
				for _, f := range []string{"kubectl-mirrord", "LICENSE"} {
					if _, err := os.Stat(filepath.Join(root, "store", "mirrord", m.Spec.Version, f)); err != nil {
						t.Errorf("%s not installed: %v", f, err)
					}
				}
				if goos == runtime.GOOS && arch == runtime.GOARCH {
					var v struct{ Version, Platform string }
					out := run("mirrord", "version", "--client", "-o", "json")
					if err := json.Unmarshal([]byte(out), &v); err != nil || v.Version != m.Spec.Version || v.Platform != goos+"/"+arch {
						t.Errorf("kubectl mirrord version says %q (%v), want %s on %s/%s", out, err, m.Spec.Version, goos, arch)
					}
					if out := run("plugin", "list"); !strings.Contains(out, "kubectl-mirrord") {
						t.Errorf("kubectl plugin list does not show kubectl-mirrord:\n%s", out)
					}
				}
			})
		}
	}
}

// TestKrewCustomIndex installs the plugin the way the README tells users to: from the
// project's own krew index (the default index's "mirrord" is MetalBear's), added with
// `kubectl krew index add`, then `kubectl krew install kubectl-mirrord/mirrord`. The index is a
// local git repository holding the release's manifest, and the archives are served on
// loopback where the manifest's URLs point; krew clones, downloads and checks the sha256s
// itself. `kubectl mirrord version` then says which plugin this is.
func TestKrewCustomIndex(t *testing.T) {
	dist, krew, kubectl := os.Getenv("MIRRORD_E2E_DIST"), os.Getenv("MIRRORD_E2E_KREW"), os.Getenv("MIRRORD_E2E_KUBECTL")
	if dist == "" || krew == "" || kubectl == "" {
		t.Skip("needs MIRRORD_E2E_DIST (make dist), MIRRORD_E2E_KREW (make krew), MIRRORD_E2E_KUBECTL")
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dist)))
	defer srv.Close()
	manifest, err := os.ReadFile(filepath.Join(dist, "mirrord.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The release's URLs, pointed at this test's server (same archives, same sha256s).
	local := regexp.MustCompile(`uri: \S+/(kubectl-mirrord_[a-z0-9]+_[a-z0-9]+\.tar\.gz)`).ReplaceAll(manifest, []byte("uri: "+srv.URL+"/$1"))
	index := t.TempDir()
	if err := os.MkdirAll(filepath.Join(index, "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(index, "plugins", "mirrord.yaml"), local, 0o644); err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", index, "-c", "user.name=t", "-c", "user.email=t@localhost"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	git("init", "-q", "-b", "main")
	git("add", ".")
	git("commit", "-q", "-m", "kubectl-mirrord")

	bin, root := t.TempDir(), t.TempDir()
	for name, target := range map[string]string{"kubectl": kubectl, "kubectl-krew": krew} {
		if err := os.Symlink(target, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("kubectl", args...)
		cmd.Env = []string{"PATH=" + bin + ":" + filepath.Join(root, "bin") + ":/usr/bin:/bin", "HOME=" + root, "KREW_ROOT=" + root}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("krew", "index", "add", "kubectl-mirrord", "file://"+index)
	if out := run("krew", "index", "list"); !strings.Contains(out, "kubectl-mirrord") {
		t.Errorf("krew index list:\n%s", out)
	}
	run("krew", "install", "kubectl-mirrord/mirrord")
	if out := run("krew", "list"); !strings.Contains(out, "kubectl-mirrord/mirrord") {
		t.Errorf("krew list does not show kubectl-mirrord/mirrord:\n%s", out)
	}
	out := run("mirrord", "version", "--client")
	if !strings.HasPrefix(out, "Plugin:     kubectl-mirrord ") {
		t.Errorf("kubectl mirrord version:\n%s\nwant it to say kubectl-mirrord (not MetalBear's mirrord)", out)
	}
}
