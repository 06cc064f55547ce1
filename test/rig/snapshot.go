package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Snapshot is the host state a rig may change. Taken before `up` and compared after
// `down`, it proves that teardown left nothing behind.
type Snapshot struct {
	Processes []string          `json:"processes"`
	Mounts    []string          `json:"mounts"`
	NetNS     []string          `json:"netns"`
	Links     []string          `json:"links"`
	Routes    []string          `json:"routes"`
	Cgroups   []string          `json:"cgroups"`
	Paths     []string          `json:"paths"`
	Nftables  []string          `json:"nftables"`
	Sysctls   map[string]string `json:"sysctls"`
}

// rigProcessNames are the commands a rig starts, directly or through containerd.
var rigProcessNames = map[string]bool{
	"etcd": true, "containerd": true, "containerd-shim": true, "containerd-shim-runc-v2": true, "runc": true,
	"kube-apiserver": true, "kube-controller-manager": true, "kube-scheduler": true, "kubelet": true, "kube-proxy": true,
	"coredns": true, "pause": true, "echo": true, "kubectl-mirrord": true, "rig": true,
}

// volatileSysctls (paths below /proc/sys) change on their own; they are not compared.
var volatileSysctls = []string{
	"kernel/random/", "fs/dentry-state", "fs/file-nr", "fs/inode-nr", "fs/inode-state", "fs/aio-nr",
	"kernel/ns_last_pid", "kernel/pty/nr", "net/netfilter/nf_conntrack_count", "kernel/perf_event_max_sample_rate",
	"fs/quota/", "net/ipv4/route/gc_", "kernel/tainted", "fs/pipe-user-pages", "kernel/sched_",
}

// watchedDirs are listed two levels deep: a component that writes outside the rig's
// state directory shows up here.
var watchedDirs = []string{"/etc", "/opt", "/run", "/var/lib", "/var/log", "/var/run"}

func takeSnapshot() (*Snapshot, error) {
	s := &Snapshot{}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	// This process and its ancestors (a `rig subreaper` running the suite) are not leftovers.
	self := ancestors()
	for _, p := range procs {
		if p.Name()[0] < '0' || p.Name()[0] > '9' || self[p.Name()] {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
		if err != nil {
			continue
		}
		name := strings.TrimSpace(string(comm))
		if rigProcessNames[name] || strings.HasPrefix(name, "containerd-shim") || strings.HasPrefix(name, "kube-") {
			s.Processes = append(s.Processes, fmt.Sprintf("%s %s (%s)", p.Name(), name, procState(p.Name())))
		}
	}
	if s.Mounts, err = mountPoints(); err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			s.NetNS = append(s.NetNS, e.Name())
		}
	}
	s.Links = commandLines("ip", "-o", "link", "show")
	for i, l := range s.Links {
		if f := strings.Fields(l); len(f) > 1 {
			s.Links[i] = strings.TrimSuffix(f[1], ":")
		}
	}
	s.Routes = commandLines("ip", "route", "show", "table", "all")
	s.Nftables = commandLines("nft", "list", "ruleset")
	hs, err := cgroupHierarchies()
	if err != nil {
		return nil, err
	}
	for _, h := range hs {
		entries, _ := os.ReadDir(h)
		for _, e := range entries {
			if e.IsDir() {
				s.Cgroups = append(s.Cgroups, filepath.Join(h, e.Name()))
			}
		}
	}
	for _, d := range watchedDirs {
		s.Paths = append(s.Paths, listDepth(d, 2)...)
	}
	if s.Sysctls, err = readSysctls(); err != nil {
		return nil, err
	}
	for _, list := range [][]string{s.Processes, s.Mounts, s.NetNS, s.Links, s.Routes, s.Cgroups, s.Paths} {
		sort.Strings(list)
	}
	return s, nil
}

// mountPoints lists the mount points of this process's mount namespace.
func mountPoints() ([]string, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var points []string
	for _, line := range strings.Split(strings.TrimSpace(string(mi)), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			points = append(points, f[4])
		}
	}
	return points, nil
}

// readSysctls reads every readable sysctl but the volatile ones, keyed by its path
// below /proc/sys.
func readSysctls() (map[string]string, error) {
	sysctls := map[string]string{}
	err := filepath.WalkDir("/proc/sys", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		key := strings.TrimPrefix(p, "/proc/sys/")
		if isVolatile(key) {
			return nil
		}
		if v, err := os.ReadFile(p); err == nil {
			sysctls[key] = strings.TrimSpace(string(v))
		}
		return nil
	})
	return sysctls, err
}

func procState(pid string) string {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return "?"
	}
	if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) {
		return string(b[i+2])
	}
	return "?"
}

func isVolatile(key string) bool {
	for _, v := range volatileSysctls {
		if strings.HasPrefix(key, v) {
			return true
		}
	}
	return false
}

func commandLines(name string, args ...string) []string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return []string{fmt.Sprintf("error: %s: %v", name, err)}
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func listDepth(dir string, depth int) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		out = append(out, p)
		if depth > 1 && e.IsDir() && e.Type()&fs.ModeSymlink == 0 {
			out = append(out, listDepth(p, depth-1)...)
		}
	}
	return out
}

func writeSnapshot(s *Snapshot, path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func readSnapshot(path string) (*Snapshot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Snapshot
	return &s, json.Unmarshal(b, &s)
}

// leftovers lists what now differs from a baseline: everything added, and every sysctl
// whose value changed. Processes present before are compared by pid.
func leftovers(before, now *Snapshot) []string {
	var out []string
	added := func(kind string, b, n []string) {
		seen := map[string]bool{}
		for _, x := range b {
			seen[x] = true
		}
		for _, x := range n {
			if !seen[x] {
				out = append(out, kind+": "+x)
			}
		}
	}
	added("process", pidsOnly(before.Processes), pidsOnly(now.Processes))
	added("mount", before.Mounts, now.Mounts)
	added("network namespace", before.NetNS, now.NetNS)
	added("link", before.Links, now.Links)
	added("route", before.Routes, now.Routes)
	added("cgroup", before.Cgroups, now.Cgroups)
	added("path", before.Paths, now.Paths)
	added("nftables", before.Nftables, now.Nftables)
	keys := make([]string, 0, len(now.Sysctls))
	for k := range now.Sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if old, ok := before.Sysctls[k]; ok && old != now.Sysctls[k] {
			out = append(out, fmt.Sprintf("sysctl: %s = %q, was %q", k, now.Sysctls[k], old))
		}
	}
	return out
}

func pidsOnly(procs []string) []string {
	out := make([]string, len(procs))
	for i, p := range procs {
		// "pid name (state)": a process that changed state is still the same process.
		if j := strings.LastIndex(p, " ("); j > 0 {
			p = p[:j]
		}
		out[i] = p
	}
	return out
}

// ancestors are the PIDs of this process and its parents, up to init.
func ancestors() map[string]bool {
	out := map[string]bool{}
	for pid := fmt.Sprint(os.Getpid()); pid != "0" && !out[pid]; {
		out[pid] = true
		b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
		if err != nil {
			break
		}
		// "pid (comm) state ppid ...": comm may hold spaces, so cut after its ')'.
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			break
		}
		pid = f[1]
	}
	return out
}
