package stateful

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// TestAccess: a session's own settings decide among what policies leave; they never widen a
// policy's rule.
func TestAccess(t *testing.T) {
	for name, tc := range map[string]struct {
		fs   mirrordv1alpha1.FSFeature
		path string
		want Access
	}{
		"mode read":                                    {fs: mirrordv1alpha1.FSFeature{Mode: "read"}, path: "/etc/app", want: AccessRead},
		"mode local":                                   {fs: mirrordv1alpha1.FSFeature{Mode: "local"}, path: "/etc/app", want: AccessLocal},
		"the session's readWrite over its mode":        {fs: mirrordv1alpha1.FSFeature{Mode: "read", ReadWrite: []string{"^/data/"}}, path: "/data/x", want: AccessWrite},
		"the session's readOnly over local mode":       {fs: mirrordv1alpha1.FSFeature{Mode: "local", ReadOnly: []string{".*"}}, path: "/etc/app", want: AccessRead},
		"a policy's readOnly over the session's write": {fs: mirrordv1alpha1.FSFeature{Mode: "write", ReadWrite: []string{".*"}, PolicyReadOnly: []string{"^/etc/"}}, path: "/etc/app", want: AccessRead},
		"a policy's readOnly leaves other paths":       {fs: mirrordv1alpha1.FSFeature{Mode: "write", PolicyReadOnly: []string{"^/etc/"}}, path: "/data/x", want: AccessWrite},
		"a policy's readOnly does not add reading":     {fs: mirrordv1alpha1.FSFeature{Mode: "local", PolicyReadOnly: []string{"^/etc/"}}, path: "/etc/app", want: AccessLocal},
		"a policy's local over the session's readOnly": {fs: mirrordv1alpha1.FSFeature{Mode: "read", ReadOnly: []string{".*"}, PolicyLocal: []string{"^/secrets/"}}, path: "/secrets/db", want: AccessLocal},
		"a policy's local over the session's write":    {fs: mirrordv1alpha1.FSFeature{Mode: "write", ReadWrite: []string{".*"}, PolicyLocal: []string{"^/secrets/"}}, path: "/secrets/db", want: AccessLocal},
		"notFound over everything":                     {fs: mirrordv1alpha1.FSFeature{Mode: "write", ReadWrite: []string{".*"}, NotFound: []string{"^/secrets/"}}, path: "/secrets/db", want: AccessNotFound},
	} {
		t.Run(name, func(t *testing.T) {
			fsys, err := newFS(tc.fs)
			if err != nil {
				t.Fatal(err)
			}
			if got := fsys.Access(tc.path); got != tc.want {
				t.Errorf("Access(%s) = %v, want %v", tc.path, got, tc.want)
			}
		})
	}
}

// TestKernelFilesRefused: whatever the path and the session's settings, a file operation
// reaches files, never the kernel's views (procfs, sysfs) or devices, also through symlinks.
// The root here is this machine's, as /proc/PID/root is the target's.
func TestKernelFilesRefused(t *testing.T) {
	fsys, err := newFS(mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeWrite})
	if err != nil {
		t.Fatal(err)
	}
	if fsys.root, err = os.Open("/"); err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	dir := t.TempDir()
	for name, target := range map[string]string{"environ": "/proc/self/environ", "sys": "/sys/kernel", "null": "/dev/null"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("ok"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/proc/self/environ", "/proc/self/mem", "/proc/self/status", "/sys/kernel/uevent_seqnum", "/dev/null",
		filepath.Join(dir, "environ"), filepath.Join(dir, "null")} {
		if _, err := fsys.ReadFile(p); !errors.Is(err, ErrKernelFile) {
			t.Errorf("reading %s: err = %v, want %v", p, err, ErrKernelFile)
		}
	}
	for _, p := range []string{"/proc", "/proc/self", "/sys", filepath.Join(dir, "sys")} {
		if _, err := fsys.ReadDir(p); !errors.Is(err, ErrKernelFile) {
			t.Errorf("listing %s: err = %v, want %v", p, err, ErrKernelFile)
		}
	}
	for _, p := range []string{"/proc", "/proc/self", "/proc/1/environ", "/sys"} {
		if _, err := fsys.Stat(p); !errors.Is(err, ErrKernelFile) {
			t.Errorf("stat %s: err = %v, want %v", p, err, ErrKernelFile)
		}
	}
	if b, err := fsys.ReadFile(filepath.Join(dir, "file")); err != nil || string(b) != "ok" {
		t.Errorf("reading a plain file: %q, %v", b, err)
	}
	// A device's metadata is not the device.
	if _, err := fsys.Stat("/dev/null"); err != nil {
		t.Errorf("stat /dev/null: %v", err)
	}
}

// TestRulesAfterSymlinks: a path's rules are those of the path as asked and of the path its
// symlinks lead to inside the container, whichever is narrower.
func TestRulesAfterSymlinks(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"run/secrets", "etc/secret/..2026_12_04", "var"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"run/secrets/db", "etc/secret/..2026_12_04/token", "etc/plain"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"var/run":           "../run",                     // as Debian's /var/run
		"etc/secret/..data": "..2026_12_04",               // as a projected volume's
		"etc/secret/token":  "..data/token",               //
		"etc/escape":        "../../../../../run/secrets", // ".." stops at the root
		"etc/absolute":      "/run/secrets/db",
		"loop":              "loop",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	rules := mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeRead,
		PolicyLocal: []string{`^/run/secrets/`, `^/etc/secret/\.\.2026_12_04/`}}
	fsys, err := newFS(rules)
	if err != nil {
		t.Fatal(err)
	}
	if fsys.root, err = os.Open(root); err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	for p, want := range map[string]Access{
		"/run/secrets/db":     AccessLocal,
		"/var/run/secrets/db": AccessLocal, // through var/run -> ../run
		"/etc/secret/token":   AccessLocal, // through ..data -> ..2026_12_04
		"/etc/escape/db":      AccessLocal,
		"/etc/absolute":       AccessLocal,
		"/etc/plain":          AccessRead,
		"/etc/missing/x":      AccessRead,
	} {
		got, err := fsys.access(p)
		if err != nil || got != want {
			t.Errorf("access(%s) = %v, %v; want %v", p, got, err, want)
		}
	}
	if _, err := fsys.access("/loop/x"); !errors.Is(err, unix.ELOOP) {
		t.Errorf("a symlink loop: %v, want ELOOP", err)
	}
	// And what a read of a covered path returns.
	if _, err := fsys.ReadFile("/var/run/secrets/db"); !errors.Is(err, ErrLocal) {
		t.Errorf("reading /var/run/secrets/db: %v, want %v", err, ErrLocal)
	}
}
