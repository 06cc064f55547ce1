package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fakeProc(t *testing.T, cgroups map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, cg := range cgroups {
		if err := os.MkdirAll(filepath.Join(root, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pid, "cgroup"), []byte(cg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestFindContainerPID(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef"
	root := fakeProc(t, map[string]string{
		"1":    "12:pids:/\n",
		"40":   "12:pids:/kubepods/besteffort/podX/" + id + "\n",
		"35":   "12:pids:/kubepods/besteffort/podX/" + id + "\n", // the container's first process
		"20":   "12:pids:/kubepods/besteffort/podX/ffffffffffffffff\n",
		"self": "ignored",
	})
	pid, err := findContainerPID(root, "containerd://"+id)
	if err != nil || pid != 35 {
		t.Fatalf("findContainerPID = %d, %v; want 35", pid, err)
	}
	// PIDs wrap: an exec probe's process with a lower PID than the container's first process
	// started later, and loses.
	if err := os.MkdirAll(filepath.Join(root, "7"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(root, "7", "cgroup"), []byte("12:pids:/kubepods/besteffort/podX/"+id+"\n"), 0o644)
	stat := func(pid, start string) {
		line := pid + " (echo get) S 1 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 " + start + " 1000 100"
		if err := os.WriteFile(filepath.Join(root, pid, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stat("7", "900000")
	stat("35", "500000")
	stat("40", "500100")
	if pid, err := findContainerPID(root, "containerd://"+id); err != nil || pid != 35 {
		t.Fatalf("with a wrapped PID: findContainerPID = %d, %v; want 35 (started first)", pid, err)
	}
	if _, err := findContainerPID(root, "containerd://"+strings.Repeat("e", 64)); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("missing container: err = %v", err)
	}
	if _, err := findContainerPID(root, "containerd://abc"); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Fatalf("short id: err = %v", err)
	}
}

// A process in the host's network namespace (this test, like a hostNetwork pod) is refused.
func TestOpenTargetRefusesHostNetwork(t *testing.T) {
	if _, err := os.Stat("/proc/1/ns/net"); err != nil {
		t.Skip("cannot read /proc/1/ns/net:", err)
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	init, _ := os.Readlink("/proc/1/ns/net")
	if self != init {
		t.Skip("this test runs outside the host network namespace")
	}
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	// Give our own process a fake container ID by building a proc view of it.
	root := t.TempDir()
	const id = "feedfacefeedfacefeedface"
	if err := os.MkdirAll(filepath.Join(root, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "7"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc/1/ns", filepath.Join(root, "1", "ns")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc/self/ns", filepath.Join(root, "7", "ns")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "7", "cgroup"), append(cg, []byte("0::/x/"+id+"\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := openTarget(t.Context(), root, "", "containerd://"+id); !errors.Is(err, ErrHostNetwork) {
		t.Fatalf("openTarget = %v, want ErrHostNetwork", err)
	}
}

// TestAliveByStartTime: the target is its PID and the start time it had; a PID the kernel
// gave another process since is a lost target.
func TestAliveByStartTime(t *testing.T) {
	pid := os.Getpid()
	a := New(Config{})
	for _, tc := range []struct {
		start uint64
		want  bool
	}{
		{startTime("/proc", pid), true},
		{startTime("/proc", pid) + 1, false}, // the same PID, another process
		{0, false},
	} {
		a.target = &served{pid: pid, start: tc.start}
		if got := a.alive(); got != tc.want {
			t.Errorf("start %d: alive = %v, want %v", tc.start, got, tc.want)
		}
	}
	a.target = nil
}
