package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// hostPaths are paths outside the state directory that the rig's components create
// (containerd's shim sockets, the CNI cache, the kubelet's container log links, ip
// netns's mount point, iptables' lock, util-linux mount's utab). up records which already existed; down removes
// the others.
var hostPaths = []string{
	"/run/netns", "/run/containerd", "/var/lib/cni", "/var/log/containers", "/var/log/pods",
	"/run/xtables.lock", "/var/lib/kubelet", "/etc/cni", "/opt/cni", "/opt/containerd",
	"/var/lib/containerd", "/run/kubernetes", "/var/run/kubernetes", "/run/mount",
}

// hostState is what up records so down can restore the host.
type hostState struct {
	Sysctls  map[string]string `json:"sysctls"`
	Existing map[string]bool   `json:"existing"`
	Clusters int               `json:"clusters"`
}

func hostStatePath(state string) string { return filepath.Join(state, "host-before.json") }

func recordHostState(state string, clusters int) error {
	sysctls, err := readSysctls()
	if err != nil {
		return err
	}
	hs := hostState{Sysctls: sysctls, Existing: map[string]bool{}, Clusters: clusters}
	for _, p := range hostPaths {
		if _, err := os.Lstat(p); err == nil {
			hs.Existing[p] = true
		}
	}
	b, err := json.MarshalIndent(hs, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(hostStatePath(state), b, 0o644)
}

// down removes everything a rig made, whatever state it is in: it works after a clean
// up, a failed up, or a kill -9 of the rig or its supervisor. Every step runs; the
// errors are reported together.
func down(p Paths, logf func(string, ...any)) error {
	var errs []error
	var hs hostState
	if b, err := os.ReadFile(hostStatePath(p.State)); err == nil {
		_ = json.Unmarshal(b, &hs)
	}
	// 1. Stop components gracefully, newest first, through the supervisor if it lives.
	if c, err := supervisorClient(p.State); err == nil {
		if err := c.Call("Supervisor.Shutdown", 5*time.Second, &struct{}{}); err != nil {
			logf("supervisor shutdown: %v", err)
		}
		c.Close()
	}
	// 2. Kill whatever is left in the rig's cgroups (pods, shims, an orphaned component).
	if err := killCgroup(); err != nil {
		errs = append(errs, err)
	}
	// 3. Unmount everything below the state directory (pod volumes, rootfs, netns files).
	if err := unmountBelow(p.State); err != nil {
		errs = append(errs, err)
	}
	// 4. Network: node namespaces (their veths, bridges and iptables go with them), then
	// the host bridge and its routes.
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), netnsPrefix) {
				if err := run("ip", "netns", "delete", e.Name()); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if _, err := os.Stat("/sys/class/net/" + bridgeName); err == nil {
		if err := run("ip", "link", "delete", bridgeName); err != nil {
			errs = append(errs, err)
		}
	}
	// 5. cgroups, deepest first, now that they are empty.
	if err := removeCgroups(); err != nil {
		errs = append(errs, err)
	}
	// 6. sysctls the kubelet changed (kernel.panic, vm.overcommit_memory, ...).
	if hs.Sysctls != nil {
		errs = append(errs, restoreSysctls(hs.Sysctls, logf)...)
	}
	// 7. Files outside the state directory, then the state directory itself.
	if hs.Existing != nil {
		for _, path := range hostPaths {
			if hs.Existing[path] {
				// There before (another rig's leftover, say): only what points into this
				// rig's state goes, such as the kubelet's container log links.
				errs = append(errs, removeLinksInto(path, p.State)...)
				continue
			}
			if path == "/run/netns" {
				// ip netns mounts /run/netns on itself; unmount it before removing it.
				_ = unix.Unmount(path, unix.MNT_DETACH)
			}
			if err := os.RemoveAll(path); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := os.RemoveAll(p.State); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// rigCgroupDirs lists the rig's cgroup directories in every hierarchy, deepest first.
func rigCgroupDirs() []string {
	hs, _ := cgroupHierarchies()
	var dirs []string
	for _, h := range hs {
		root := filepath.Join(h, cgroupParent)
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	return dirs
}

// killCgroup SIGKILLs every process in the rig's cgroups until none is left.
func killCgroup() error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids := map[int]bool{}
		for _, d := range rigCgroupDirs() {
			b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
					pids[pid] = true
				}
			}
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes survive SIGKILL in the rig's cgroups: %v", pids)
		}
		for pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func removeCgroups() error {
	var errs []error
	for _, d := range rigCgroupDirs() {
		var err error
		// A cgroup can stay busy for a moment after its last task exits.
		for i := 0; i < 100; i++ {
			if err = os.Remove(d); err == nil || os.IsNotExist(err) {
				err = nil
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// unmountBelow lazily unmounts every mount at or below dir, deepest first.
func unmountBelow(dir string) error {
	var errs []error
	for pass := 0; pass < 5; pass++ {
		points, err := mountPoints()
		if err != nil {
			return err
		}
		var targets []string
		for _, m := range points {
			if m == dir || strings.HasPrefix(m, dir+"/") {
				targets = append(targets, m)
			}
		}
		if len(targets) == 0 {
			return nil
		}
		sort.Slice(targets, func(i, j int) bool { return len(targets[i]) > len(targets[j]) })
		errs = errs[:0]
		for _, t := range targets {
			if err := unix.Unmount(t, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
				errs = append(errs, fmt.Errorf("unmount %s: %w", t, err))
			}
		}
	}
	return errors.Join(errs...)
}

func restoreSysctls(before map[string]string, logf func(string, ...any)) []error {
	now, err := readSysctls()
	if err != nil {
		return []error{err}
	}
	var errs []error
	for k, v := range before {
		if cur, ok := now[k]; ok && cur != v {
			path := "/proc/sys/" + k
			if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", k, v, err))
				continue
			}
			logf("restored sysctl %s = %s (was %s)", k, v, cur)
		}
	}
	return errs
}

// removeLinksInto removes the symbolic links directly in dir that point into state.
func removeLinksInto(dir, state string) []error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var errs []error
	for _, e := range entries {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		link := filepath.Join(dir, e.Name())
		if target, err := os.Readlink(link); err == nil && strings.HasPrefix(target, state+"/") {
			if err := os.Remove(link); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}
