package main

import (
	"fmt"
	"log"
	"net"
	"net/rpc"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The supervisor is the parent of every rig component. It exists because this machine's
// PID 1 does not reap orphans: as a child subreaper it reaps the components and the
// containerd shims that re-parent to it. Teardown never depends on it: down sweeps the
// rig's cgroup, mounts and namespaces even when the supervisor was killed.

// ProcSpec is one component process.
type ProcSpec struct {
	// Key names the process, e.g. "c1/kube-apiserver".
	Key  string
	Argv []string
	Env  []string
	// NetNS is the named network namespace (ip netns) to run in; empty: the host's.
	NetNS string
	// Cgroup is the pids cgroup below /sys/fs/cgroup/pids to run in.
	Cgroup string
	Log    string
}

// ProcInfo is a process's state as the supervisor sees it.
type ProcInfo struct {
	Spec    ProcSpec
	PID     int
	Running bool
	Exit    string
}

// StopRequest stops one process: SIGTERM, then SIGKILL after Timeout.
type StopRequest struct {
	Key     string
	Timeout time.Duration
}

// Supervisor is the RPC service.
type Supervisor struct {
	mu    sync.Mutex
	procs map[string]*ProcInfo
	order []string
	done  chan struct{}
}

func supervisorSocket(state string) string { return filepath.Join(state, "supervisor.sock") }

// runSupervisor serves until Shutdown is called.
func runSupervisor(state string) error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become child subreaper: %w", err)
	}
	s := &Supervisor{procs: map[string]*ProcInfo{}, done: make(chan struct{})}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Supervisor", s); err != nil {
		return err
	}
	sock := supervisorSocket(state)
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	go s.reap()
	go srv.Accept(l)
	<-s.done
	// Let the Shutdown reply reach the client before the process exits.
	time.Sleep(100 * time.Millisecond)
	l.Close()
	return nil
}

// reap collects every exited child, known or orphaned.
func (s *Supervisor) reap() {
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, syscall.SIGCHLD)
	for range sigs {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			s.mu.Lock()
			for _, p := range s.procs {
				if p.PID == pid && p.Running {
					p.Running = false
					p.Exit = exitString(ws)
					log.Printf("%s (pid %d) exited: %s", p.Spec.Key, pid, p.Exit)
				}
			}
			s.mu.Unlock()
		}
	}
}

// launcher joins the cgroup, then enters the network namespace and execs the component,
// so the process is tracked from its first instruction.
const launcher = `echo $$ > "/sys/fs/cgroup/pids/$1/cgroup.procs" || exit 1; ns=$2; shift 2; [ -z "$ns" ] && exec "$@"; exec nsenter --net="/run/netns/$ns" -- "$@"`

// Start starts a process, or restarts a stopped one when only Key is given.
func (s *Supervisor) Start(spec ProcSpec, pid *int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if existing, ok := s.procs[spec.Key]; ok {
		if existing.Running {
			return fmt.Errorf("%s is already running (pid %d)", spec.Key, existing.PID)
		}
		if len(spec.Argv) == 0 {
			spec = existing.Spec
		}
	}
	if len(spec.Argv) == 0 {
		return fmt.Errorf("unknown process %s", spec.Key)
	}
	logf, err := os.OpenFile(spec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	argv := append([]string{"/bin/sh", "-c", launcher, "rig-launch", spec.Cgroup, spec.NetNS}, spec.Argv...)
	proc, err := os.StartProcess("/bin/sh", argv, &os.ProcAttr{
		Env:   append(os.Environ(), spec.Env...),
		Files: []*os.File{nil, logf, logf},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return fmt.Errorf("start %s: %w", spec.Key, err)
	}
	if _, ok := s.procs[spec.Key]; !ok {
		s.order = append(s.order, spec.Key)
	}
	s.procs[spec.Key] = &ProcInfo{Spec: spec, PID: proc.Pid, Running: true}
	*pid = proc.Pid
	log.Printf("started %s (pid %d)", spec.Key, proc.Pid)
	return nil
}

// Stop stops one process and waits for it to be reaped.
func (s *Supervisor) Stop(req StopRequest, stopped *bool) error {
	s.mu.Lock()
	p, ok := s.procs[req.Key]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("unknown process %s", req.Key)
	}
	*stopped = s.stop(p, req.Timeout)
	return nil
}

func (s *Supervisor) stop(p *ProcInfo, timeout time.Duration) bool {
	running := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return p.Running
	}
	if !running() {
		return false
	}
	_ = syscall.Kill(p.PID, syscall.SIGTERM)
	deadline := time.Now().Add(timeout)
	for running() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if running() {
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
		for i := 0; running() && i < 250; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return true
}

// List reports every process the supervisor started.
func (s *Supervisor) List(_ struct{}, out *[]ProcInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.order {
		*out = append(*out, *s.procs[k])
	}
	return nil
}

// Shutdown stops every process, newest first, and ends the supervisor.
func (s *Supervisor) Shutdown(timeout time.Duration, _ *struct{}) error {
	s.mu.Lock()
	order := append([]string(nil), s.order...)
	s.mu.Unlock()
	for i := len(order) - 1; i >= 0; i-- {
		s.mu.Lock()
		p := s.procs[order[i]]
		s.mu.Unlock()
		s.stop(p, timeout)
	}
	// Pods and containerd shims outlive containerd. They are this process's orphans, so
	// they are killed and reaped here, before it exits; once it has exited they would
	// re-parent to an init that may never reap them.
	err := killCgroup()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		var ws syscall.WaitStatus
		if _, werr := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); werr == syscall.ECHILD {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(s.done)
	return err
}

func exitString(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exit %d", ws.ExitStatus())
}

// supervisorClient connects to a running supervisor.
func supervisorClient(state string) (*rpc.Client, error) {
	c, err := rpc.Dial("unix", supervisorSocket(state))
	if err != nil {
		return nil, fmt.Errorf("the rig's supervisor is not running (%w): bring the rig up with `make clusters`", err)
	}
	return c, nil
}
