package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/procfs"
)

// ErrHostNetwork refuses a target that shares the node's network namespace.
var ErrHostNetwork = errors.New("the target shares the node's network namespace (hostNetwork): intercepting it would intercept the whole node")

// locateContainer finds the container's first process: the node's container runtime says
// (CRI ContainerStatus, with the container's environment), or, when no runtime answers, a
// scan of the processes' cgroups. how says which answered, for the log.
func locateContainer(ctx context.Context, procRoot, runtimeEndpoint, containerID string) (c runtimeContainer, how string, err error) {
	var criErrs []error
	for _, sock := range runtimeSockets(procRoot, runtimeEndpoint, containerID) {
		if _, err := os.Stat(sock); err != nil {
			continue
		}
		c, err := criContainer(ctx, sock, containerID)
		if err == nil {
			return c, "CRI " + sock, nil
		}
		criErrs = append(criErrs, fmt.Errorf("CRI %s: %w", sock, err))
	}
	c.PID, err = findContainerPID(procRoot, containerID)
	how = "cgroup scan (no container runtime socket found)"
	if len(criErrs) > 0 {
		how = "cgroup scan (" + errors.Join(criErrs...).Error() + ")"
	}
	return c, how, err
}

// findContainerPID returns the container's first process: of the processes whose cgroup
// path names the container, the one that started first. Not the lowest PID: PIDs wrap (at
// 32768 on some nodes), so an exec probe's process may have a lower one. procRoot is /proc
// (a parameter for tests).
func findContainerPID(procRoot, containerID string) (int, error) {
	id := bareID(containerID)
	if len(id) < 12 {
		return 0, fmt.Errorf("container ID %q is too short to identify a container", containerID)
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return 0, err
	}
	best, bestStart := 0, uint64(0)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !inContainer(procRoot, pid, id) {
			continue
		}
		start := startTime(procRoot, pid)
		if best == 0 || start < bestStart || (start == bestStart && pid < best) {
			best, bestStart = pid, start
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("no process of container %s on this node: the container is not running, or the agent lacks hostPID", id)
	}
	return best, nil
}

// bareID is a container ID without its runtime prefix ("containerd://").
func bareID(containerID string) string {
	if _, after, ok := strings.Cut(containerID, "://"); ok {
		return after
	}
	return containerID
}

// inContainer reports whether process pid's cgroup path names container id.
func inContainer(procRoot string, pid int, id string) bool {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	return err == nil && bytes.Contains(b, []byte(id))
}

// startTime is when process pid started, in clock ticks since boot (field 22 of its stat);
// 0 when unreadable, which sorts it first only among unreadable ones by PID.
func startTime(procRoot string, pid int) uint64 {
	f := procfs.StatFields(procRoot, pid)
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// netnsInode identifies a process's network namespace.
func netnsInode(procRoot string, pid int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(procRoot, strconv.Itoa(pid), "ns", "net"), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// openTarget finds the container's process, refuses a hostNetwork target, and returns the
// PID with an open fd of its network namespace (held so the namespace outlives a restart of
// the target's first process while the agent decides what to do).
func openTarget(ctx context.Context, procRoot, runtimeEndpoint, containerID string) (c runtimeContainer, how string, netns *os.File, err error) {
	c, how, err = locateContainer(ctx, procRoot, runtimeEndpoint, containerID)
	if err != nil {
		return c, how, nil, err
	}
	pid := c.PID
	started := startTime(procRoot, pid)
	target, err := netnsInode(procRoot, pid)
	if err != nil {
		return c, how, nil, fmt.Errorf("reading the target's network namespace: %w", err)
	}
	if host, err := netnsInode(procRoot, 1); err == nil && host == target {
		return c, how, nil, ErrHostNetwork
	}
	netns, err = os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "ns", "net"))
	if err != nil {
		return c, how, nil, fmt.Errorf("opening the target's network namespace: %w", err)
	}
	// The process may have exited and its PID gone to another since it was found: the
	// namespace is the container's only if the PID is still the same process.
	if startTime(procRoot, pid) != started {
		netns.Close()
		return c, how, nil, fmt.Errorf("process %d of container %s exited while the agent opened it; retrying", pid, containerID)
	}
	return c, how, netns, nil
}

// openNetns opens process pid's network namespace.
func openNetns(pid int) (*os.File, error) {
	return os.Open(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net"))
}
