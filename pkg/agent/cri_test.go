package agent

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestShimSocket(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", "abc", "-address", "/run/containerd/containerd.sock"}, "/run/containerd/containerd.sock"},
		{[]string{"containerd-shim-runc-v2", "--address=/var/lib/rig/c1/containerd.sock", "-id", "x"}, "/var/lib/rig/c1/containerd.sock"},
		{[]string{"/usr/bin/conmon", "--address", "/run/crio/crio.sock"}, ""},
		{[]string{"containerd-shim-runc-v2", "-id", "abc"}, ""},
		{nil, ""},
	} {
		if got := shimSocket(tc.args); got != tc.want {
			t.Errorf("shimSocket(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestParseInfo(t *testing.T) {
	// containerd 1.6's and CRI-O's verbose info, trimmed to what is read.
	c, err := parseInfo(map[string]string{"info": `{"sandboxID":"s","pid":4242,"runtimeSpec":{"hostname":"api-7d9f","process":{"env":["PATH=/usr/bin","HOSTNAME=api-7d9f","DB=postgres://db"]}}}`})
	if err != nil || c.PID != 4242 || c.Hostname != "api-7d9f" || !slices.Equal(c.Env, []string{"PATH=/usr/bin", "HOSTNAME=api-7d9f", "DB=postgres://db"}) {
		t.Errorf("parseInfo = %+v, %v", c, err)
	}
	// A runtime that gives no spec: the PID, and no environment (so /proc stands in).
	if c, err := parseInfo(map[string]string{"info": `{"pid":7,"runtimeSpec":{}}`}); err != nil || c.PID != 7 || c.Env != nil {
		t.Errorf("no spec: %+v, %v", c, err)
	}
	for _, info := range []map[string]string{nil, {"info": `{"pid":0}`}, {"info": "not json"}} {
		if _, err := parseInfo(info); err == nil {
			t.Errorf("parseInfo(%v) did not fail", info)
		}
	}
}

// runtime answers ContainerStatus the way containerd does.
type runtime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	containers map[string]*runtimeapi.ContainerStatusResponse
}

func (r *runtime) ContainerStatus(_ context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	resp, ok := r.containers[req.ContainerId]
	if !ok || !req.Verbose {
		return nil, status.Errorf(codes.NotFound, "container %q: not found", req.ContainerId)
	}
	return resp, nil
}

// serveRuntime serves r on a socket reached at path (a link to it: the path may be too long
// to bind).
func serveRuntime(t *testing.T, path string, r *runtime) {
	t.Helper()
	short := filepath.Join(t.TempDir(), "cri.sock")
	ln, err := net.Listen("unix", short)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(short, path); err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, r)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
}

// TestContainerPIDAsksTheRuntime: the runtime's answer wins over the cgroup scan (which
// would pick another process here), through a socket path longer than sun_path; a container
// the runtime says is not running falls back to the scan, saying why.
func TestContainerPIDAsksTheRuntime(t *testing.T) {
	const running, exited = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	root := fakeProc(t, map[string]string{
		"1":  "0::/\n",
		"40": "0::/kubepods/podX/" + running + "\n0::/kubepods/podY/" + exited + "\n",
	})
	sock := filepath.Join(root, "1", "root", strings.Repeat("deep/", 20), "containerd.sock")
	if len(sock) < 108 {
		t.Fatalf("socket path %d bytes: want one longer than sun_path", len(sock))
	}
	serveRuntime(t, sock, &runtime{containers: map[string]*runtimeapi.ContainerStatusResponse{
		running: {Status: &runtimeapi.ContainerStatus{State: runtimeapi.ContainerState_CONTAINER_RUNNING}, Info: map[string]string{"info": `{"pid":35}`}},
		exited:  {Status: &runtimeapi.ContainerStatus{State: runtimeapi.ContainerState_CONTAINER_EXITED}},
	}})
	endpoint := "unix://" + strings.TrimPrefix(sock, filepath.Join(root, "1", "root"))

	c, how, err := locateContainer(t.Context(), root, endpoint, "containerd://"+running)
	if err != nil || c.PID != 35 || !strings.HasPrefix(how, "CRI ") {
		t.Errorf("running container: pid %d, how %q, err %v; want 35 from CRI", c.PID, how, err)
	}
	c, how, err = locateContainer(t.Context(), root, endpoint, "containerd://"+exited)
	if err != nil || c.PID != 40 || !strings.Contains(how, "cgroup scan") || !strings.Contains(how, "CONTAINER_EXITED, not running") {
		t.Errorf("exited container: pid %d, how %q, err %v; want 40 from the scan, saying why", c.PID, how, err)
	}
	// No socket at all: the scan, saying so.
	c, how, err = locateContainer(t.Context(), root, "", "containerd://"+running)
	if err != nil || c.PID != 40 || how != "cgroup scan (no container runtime socket found)" {
		t.Errorf("no runtime: pid %d, how %q, err %v", c.PID, how, err)
	}
}
