package stateful

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

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
