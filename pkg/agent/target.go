package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrHostNetwork refuses a target that shares the node's network namespace.
var ErrHostNetwork = errors.New("the target shares the node's network namespace (hostNetwork): intercepting it would intercept the whole node")

// findContainerPID returns the lowest PID whose cgroup path names the container: the
// container's first process. procRoot is /proc (a parameter for tests).
func findContainerPID(procRoot, containerID string) (int, error) {
	id := containerID
	if _, after, ok := strings.Cut(containerID, "://"); ok {
		id = after
	}
	if len(id) < 12 {
		return 0, fmt.Errorf("container ID %q is too short to identify a container", containerID)
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return 0, err
	}
	best := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || (best != 0 && pid >= best) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "cgroup"))
		if err != nil {
			continue // the process exited
		}
		if bytes.Contains(b, []byte(id)) {
			best = pid
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("no process of container %s on this node: the container is not running, or the agent lacks hostPID", id)
	}
	return best, nil
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
func openTarget(procRoot, containerID string) (pid int, netns *os.File, err error) {
	pid, err = findContainerPID(procRoot, containerID)
	if err != nil {
		return 0, nil, err
	}
	target, err := netnsInode(procRoot, pid)
	if err != nil {
		return 0, nil, fmt.Errorf("reading the target's network namespace: %w", err)
	}
	if host, err := netnsInode(procRoot, 1); err == nil && host == target {
		return 0, nil, ErrHostNetwork
	}
	netns, err = os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "ns", "net"))
	if err != nil {
		return 0, nil, fmt.Errorf("opening the target's network namespace: %w", err)
	}
	return pid, netns, nil
}

// openNetns opens process pid's network namespace.
func openNetns(pid int) (*os.File, error) {
	return os.Open(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net"))
}
