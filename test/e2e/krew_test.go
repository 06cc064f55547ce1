//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
					out := run("mirrord", "version", "-o", "json")
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
