package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// run runs a command and returns its error with its output, for commands whose
// failure needs explaining (ip, ctr).
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNetns runs a command inside a named network namespace.
func inNetns(ns string, name string, args ...string) error {
	return run("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// setupBridge creates the host bridge every node hangs off.
func setupBridge() error {
	if err := run("ip", "link", "add", bridgeName, "type", "bridge"); err != nil {
		return err
	}
	if err := run("ip", "addr", "add", fmt.Sprintf("%s/%d", bridgeIP, bridgePrefix), "dev", bridgeName); err != nil {
		return err
	}
	return run("ip", "link", "set", bridgeName, "up")
}

// setupNodeNetwork creates a node's network namespace, its link to the bridge and the
// routes to every other cluster's pods (so a pod of one cluster reaches another's API
// server and pods, as in a real multi-cluster network).
func setupNodeNetwork(c Cluster, all []Cluster) error {
	host := fmt.Sprintf("mrdrig-%sh", c.Name)
	steps := [][]string{
		{"ip", "netns", "add", c.NetNS},
		{"ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", c.NetNS},
		{"ip", "link", "set", host, "master", bridgeName, "up"},
		{"ip", "-n", c.NetNS, "link", "set", "lo", "up"},
		{"ip", "-n", c.NetNS, "addr", "add", fmt.Sprintf("%s/%d", c.NodeIP, bridgePrefix), "dev", "eth0"},
		{"ip", "-n", c.NetNS, "link", "set", "eth0", "up"},
		// The host reaches pods directly (tests use it); the route dies with the bridge.
		{"ip", "route", "add", c.PodCIDR, "via", c.NodeIP, "dev", bridgeName},
	}
	for _, o := range all {
		if o.Name != c.Name {
			steps = append(steps, []string{"ip", "-n", c.NetNS, "route", "add", o.PodCIDR, "via", o.NodeIP})
		}
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	// These sysctls belong to the node's namespace, not the host's.
	return inNetns(c.NetNS, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1")
}

// cgroupHierarchies lists the mounted cgroup v1 hierarchies (cpu, memory, pids, ...).
func cgroupHierarchies() ([]string, error) {
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil, err
	}
	var hs []string
	for _, e := range entries {
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		// cgroup v2's unified hierarchy is not used by the kubelet's cgroupfs driver here.
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil && e.Name() != "unified" {
			hs = append(hs, p)
		}
	}
	return hs, nil
}

// setupCgroups creates the rig's cgroup and one per cluster in every hierarchy: the
// kubelet requires its cgroupRoot to exist in all of them.
func setupCgroups(clusters []Cluster) error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		for _, c := range clusters {
			dir := filepath.Join(h, c.Cgroup())
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if filepath.Base(h) == "cpuset" {
				// A new cpuset cgroup has no CPUs or memory nodes until given its parent's.
				for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					v, err := os.ReadFile(filepath.Join(h, f))
					if err != nil {
						return err
					}
					for _, d := range []string{filepath.Join(h, cgroupParent), dir} {
						if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
							return err
						}
					}
				}
			}
		}
	}
	return nil
}
