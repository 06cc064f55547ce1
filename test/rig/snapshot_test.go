package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLeftoversFindsEveryKind(t *testing.T) {
	before := &Snapshot{
		Processes: []string{"10 containerd (S)"},
		Mounts:    []string{"/"},
		Sysctls:   map[string]string{"kernel/panic": "1", "vm/overcommit_memory": "0"},
	}
	now := &Snapshot{
		// pid 10 changed state only: the same process, not a leftover.
		Processes: []string{"10 containerd (Z)", "42 kubelet (S)"},
		Mounts:    []string{"/", "/var/lib/mirrord-rig/c1/kubelet/pods/x"},
		NetNS:     []string{"mrdrig-c1"},
		Links:     []string{"mrdrig0"},
		Routes:    []string{"10.241.0.0/20 via 172.30.0.11 dev mrdrig0"},
		Cgroups:   []string{"/sys/fs/cgroup/pids/mirrord-rig"},
		Paths:     []string{"/run/containerd"},
		Nftables:  []string{"table ip nat"},
		Sysctls:   map[string]string{"kernel/panic": "10", "vm/overcommit_memory": "0", "net/new": "1"},
	}
	got := strings.Join(leftovers(before, now), "\n")
	for _, want := range []string{
		"process: 42 kubelet", "mount: /var/lib/mirrord-rig/c1/kubelet/pods/x", "network namespace: mrdrig-c1",
		"link: mrdrig0", "route: 10.241.0.0/20", "cgroup: /sys/fs/cgroup/pids/mirrord-rig", "path: /run/containerd",
		"nftables: table ip nat", `sysctl: kernel/panic = "10", was "1"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("leftovers missed %q; got:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"process: 10 ", "overcommit", "net/new"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("leftovers reported %q, which is not a leftover:\n%s", unwanted, got)
		}
	}
}

func TestLeftoversOfIdenticalSnapshotsIsEmpty(t *testing.T) {
	s, err := takeSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	again, err := takeSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Two snapshots in a row on an idle rig-less machine differ in nothing the check
	// compares; a volatile sysctl missing from volatileSysctls shows up here.
	if left := leftovers(s, again); len(left) != 0 {
		t.Errorf("consecutive snapshots differ: %v", left)
	}
}

func TestAncestors(t *testing.T) {
	a := ancestors()
	for _, pid := range []int{os.Getpid(), os.Getppid()} {
		if !a[fmt.Sprint(pid)] {
			t.Errorf("ancestors %v lacks %d", a, pid)
		}
	}
}

// TestRemoveLinksInto: in a host directory that was there before the rig (another rig's
// leftover), down removes only the links into its own state.
func TestRemoveLinksInto(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	for name, target := range map[string]string{"ours.log": state + "/c1/pod-logs/x/0.log", "theirs.log": "/var/lib/other/0.log"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if errs := removeLinksInto(dir, state); len(errs) > 0 {
		t.Fatal(errs)
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if strings.Join(left, " ") != "file theirs.log" {
		t.Errorf("left %v, want file and theirs.log", left)
	}
}
