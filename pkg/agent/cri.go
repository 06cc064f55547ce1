package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/procfs"
)

// wellKnownRuntimeSockets are where container runtimes serve CRI on a node, by the scheme of
// the container IDs they report (pod status: "containerd://<id>").
var wellKnownRuntimeSockets = map[string][]string{
	"containerd": {"/run/containerd/containerd.sock", "/run/k3s/containerd/containerd.sock", "/var/snap/microk8s/common/run/containerd.sock"},
	"cri-o":      {"/run/crio/crio.sock", "/var/run/crio/crio.sock"},
	"docker":     {"/run/cri-dockerd.sock"},
}

// criTimeout bounds one ContainerStatus call: a runtime that does not answer in time is
// skipped for the /proc scan.
const criTimeout = 3 * time.Second

// runtimeSockets lists the CRI sockets to ask about containerID, as paths this agent can
// dial: the configured endpoint first, then the socket of the containerd that runs the agent
// itself (its shim's -address; the node's runtime whatever its path), then the well-known
// paths. Paths on the node are reached through the node's root (procRoot/PID/root): the agent
// runs in its own mount namespace but in the node's PID namespace.
func runtimeSockets(procRoot, configured, containerID string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if configured != "" {
		add(filepath.Join(procRoot, "1", "root", strings.TrimPrefix(configured, "unix://")))
	}
	if shim, addr := shimAddress(procRoot); addr != "" {
		add(filepath.Join(procRoot, strconv.Itoa(shim), "root", addr))
	}
	scheme, _, _ := strings.Cut(containerID, "://")
	for _, p := range wellKnownRuntimeSockets[scheme] {
		add(filepath.Join(procRoot, "1", "root", p))
	}
	return out
}

// shimAddress returns the PID of the containerd shim this process runs under (its parent,
// or an ancestor when the agent runs under its supervisor) and the containerd socket it
// names (containerd-shim-runc-v2 -namespace k8s.io -id ID -address /run/containerd/containerd.sock).
func shimAddress(procRoot string) (int, string) {
	pid := os.Getpid()
	for range 4 {
		pid = parentPID(procRoot, pid)
		if pid <= 1 {
			return 0, ""
		}
		b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cmdline"))
		if err != nil {
			return 0, ""
		}
		if addr := shimSocket(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")); addr != "" {
			return pid, addr
		}
	}
	return 0, ""
}

// shimSocket is the -address of a containerd shim's command line, "" for any other command.
func shimSocket(args []string) string {
	if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
		return ""
	}
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "address" || !strings.HasPrefix(a, "-") {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// parentPID is field 4 of /proc/PID/stat; 0 when unreadable.
func parentPID(procRoot string, pid int) int {
	f := procfs.StatFields(procRoot, pid)
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// runtimeContainer is what the container runtime says about a running container.
type runtimeContainer struct {
	PID int
	// Env and Hostname are the container's as the runtime started it (its OCI runtime spec:
	// the image's variables, the pod's, Secret references resolved, service links, HOSTNAME);
	// nil and "" when the runtime does not say. /proc/PID/environ is not that: programs that
	// set their process title (nginx, PostgreSQL, php-fpm, Node, Ruby) write over it.
	Env      []string
	Hostname string
}

// criContainer asks the runtime serving socket about the container (ContainerStatus,
// verbose: containerd and CRI-O put the PID and the OCI runtime spec in info).
func criContainer(ctx context.Context, socket, containerID string) (runtimeContainer, error) {
	ctx, cancel := context.WithTimeout(ctx, criTimeout)
	defer cancel()
	conn, err := grpc.NewClient("passthrough:///cri",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return dialUnix(ctx, socket) }))
	if err != nil {
		return runtimeContainer{}, err
	}
	defer conn.Close()
	resp, err := runtimeapi.NewRuntimeServiceClient(conn).ContainerStatus(ctx,
		&runtimeapi.ContainerStatusRequest{ContainerId: bareID(containerID), Verbose: true})
	if err != nil {
		return runtimeContainer{}, err
	}
	if st := resp.GetStatus().GetState(); st != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return runtimeContainer{}, fmt.Errorf("container %s is %s, not running", bareID(containerID), st)
	}
	return parseInfo(resp.GetInfo())
}

// parseInfo reads a verbose ContainerStatus's info: the PID, and the environment and
// hostname of the runtime spec when there is one.
func parseInfo(info map[string]string) (runtimeContainer, error) {
	raw, ok := info["info"]
	if !ok {
		return runtimeContainer{}, errors.New("the runtime's verbose container status has no info")
	}
	var v struct {
		PID  int `json:"pid"`
		Spec *struct {
			Hostname string `json:"hostname"`
			Process  *struct {
				Env []string `json:"env"`
			} `json:"process"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return runtimeContainer{}, fmt.Errorf("the runtime's container info: %w", err)
	}
	if v.PID <= 0 {
		return runtimeContainer{}, errors.New("the runtime's container info has no pid")
	}
	c := runtimeContainer{PID: v.PID}
	if v.Spec != nil && v.Spec.Process != nil && v.Spec.Process.Env != nil {
		c.Env, c.Hostname = v.Spec.Process.Env, v.Spec.Hostname
	}
	return c, nil
}

// dialUnix connects to a Unix socket by path, also when the path is longer than sun_path
// (108 bytes; /proc/PID/root/... prefixes make long ones): then through an O_PATH descriptor's
// /proc/self/fd link, which the kernel resolves to the socket.
func dialUnix(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	if len(path) < len(unix.RawSockaddrUnix{}.Path) {
		return d.DialContext(ctx, "unix", path)
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	return d.DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(fd))
}
