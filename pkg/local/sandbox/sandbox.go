//go:build linux

package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Options says what to run and how the sandbox looks from inside.
type Options struct {
	// Command and its arguments; Command[0] is looked up in Env's PATH.
	Command []string
	Env     []string
	Dir     string
	// ResolvConf replaces /etc/resolv.conf inside (empty: keep the local one).
	ResolvConf []byte
	// Hostname is the UTS name inside (empty: keep).
	Hostname string
	// LocalPorts are TCP ports of the developer's machine the command reaches on its own
	// 127.0.0.1 (its loopback is its own).
	LocalPorts []uint16
	// RemoteDirs are directories of the target (its volumes) to mount with FUSE at the same
	// paths inside; the parent serves each on the descriptor it gets back (Sandbox.Remote).
	RemoteDirs []string
	// MappedDirs are directories of this machine to mount with FUSE for feature.fs.mapping
	// (fsmap.Mapping.Dirs), after RemoteDirs; the parent serves each (Sandbox.Mapped).
	MappedDirs []string
	// Incoming readies Delivery: kernel sockets to dial into the command with.
	Incoming bool
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
}

// initConfig is what the parent tells the init, over the socket.
type initConfig struct {
	Command    []string `json:"command"`
	Env        []string `json:"env"`
	ResolvConf []byte   `json:"resolvConf,omitempty"`
	Hostname   string   `json:"hostname,omitempty"`
	LocalPorts []uint16 `json:"localPorts,omitempty"`
	RemoteDirs []string `json:"remoteDirs,omitempty"`
	MappedDirs []string `json:"mappedDirs,omitempty"`
	Incoming   bool     `json:"incoming,omitempty"`
}

// initReport is the init's answer: an error, or the descriptors (TUN first, then the
// socket supplier's unless NoDelivery says why not, then one listener per local port, then
// one FUSE device per Mounted directory, then one per Mapped directory) in the same
// message's SCM_RIGHTS.
type initReport struct {
	Error string `json:"error,omitempty"`
	// NoDelivery says why incoming connections cannot have kernel sockets (Options.Incoming).
	NoDelivery  string   `json:"noDelivery,omitempty"`
	SupplierPID int      `json:"supplierPID,omitempty"`
	Mounted     []string `json:"mounted,omitempty"`
	Mapped      []string `json:"mapped,omitempty"`
	// Skipped are remote directories not mounted, each with the reason.
	Skipped []string `json:"skipped,omitempty"`
}

// RemoteDir is a FUSE mount inside the sandbox, waiting to be served.
type RemoteDir struct {
	Path   string
	Device *os.File
}

// Sandbox is a started command in its namespaces.
type Sandbox struct {
	cmd  *exec.Cmd
	ctl  *os.File
	done chan struct{}
	err  error

	// TUN is the parent's end of the command's network.
	TUN *os.File
	// Listeners accept on the command's 127.0.0.1:LocalPorts[i].
	Listeners []net.Listener
	// Remote are the mounted RemoteDirs: serve each before Run (the command would hang on
	// an unserved mount).
	Remote []RemoteDir
	// Mapped are the mounted MappedDirs: serve each before Run too.
	Mapped []RemoteDir
	// Skipped says which RemoteDirs and MappedDirs could not be mounted and why.
	Skipped []string
	// Delivery dials into the command (Options.Incoming); when nil, NoDelivery says why and
	// the netstack must do.
	Delivery   *Delivery
	NoDelivery string
}

// Supported says whether this machine lets this process create the namespaces, and if not,
// why (for proxy mode's explanation).
func Supported() error {
	b, err := os.ReadFile("/proc/sys/user/max_user_namespaces")
	if err == nil && string(b) == "0\n" {
		return errors.New("user namespaces are disabled (user.max_user_namespaces=0)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("no TUN device: %w", err)
	}
	return nil
}

// Start creates the namespaces and sets them up, but does not run the command yet: serve
// TUN and Listeners, then call Run.
func Start(o Options) (*Sandbox, error) {
	if len(o.Command) == 0 {
		return nil, errors.New("no command")
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	parent, child := os.NewFile(uintptr(pair[0]), "sandbox-ctl"), os.NewFile(uintptr(pair[1]), "sandbox-ctl-child")
	defer child.Close()
	self, err := os.Executable()
	if err != nil {
		parent.Close()
		return nil, err
	}
	cmd := exec.Command(self, InitArg)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	cmd.Dir = o.Dir
	cmd.Env = []string{} // the init reads its configuration from the socket
	cmd.ExtraFiles = []*os.File{child}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS,
		// Root of its own user namespace, which is the developer outside: files it makes are theirs.
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
		// The command must not outlive the CLI (kill -9 included): its network dies with it.
		Pdeathsig: syscall.SIGKILL,
	}
	s := &Sandbox{cmd: cmd, ctl: parent, done: make(chan struct{})}
	// Pdeathsig fires when the *thread* that forked exits, and Go ends a thread whenever a
	// goroutine locked to it returns (netlink and friends do that). So the fork happens on a
	// thread this goroutine holds until the command is gone.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the command
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.err = cmd.Wait()
		close(s.done)
	}()
	if err := <-started; err != nil {
		parent.Close()
		return nil, fmt.Errorf("creating the namespaces (%w); where they are not allowed use --proxy-mode", err)
	}
	if err := s.handshake(o); err != nil {
		s.Kill()
		return nil, err
	}
	return s, nil
}

func (s *Sandbox) handshake(o Options) error {
	cfg, _ := json.Marshal(initConfig{Command: o.Command, Env: o.Env, ResolvConf: o.ResolvConf, Hostname: o.Hostname,
		LocalPorts: o.LocalPorts, RemoteDirs: o.RemoteDirs, MappedDirs: o.MappedDirs, Incoming: o.Incoming})
	if _, err := s.ctl.Write(cfg); err != nil {
		return fmt.Errorf("configuring the sandbox: %w", err)
	}
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*(2+len(o.LocalPorts)+len(o.RemoteDirs)+len(o.MappedDirs))))
	n, oobn, _, _, err := unix.Recvmsg(int(s.ctl.Fd()), buf, oob, 0)
	if err != nil || n == 0 {
		select {
		case <-s.done:
			return fmt.Errorf("the sandbox's init exited: %v", s.err)
		default:
		}
		return fmt.Errorf("reading the sandbox's report: %v", err)
	}
	var rep initReport
	if err := json.Unmarshal(buf[:n], &rep); err != nil {
		return fmt.Errorf("the sandbox's report: %w", err)
	}
	if rep.Error != "" {
		return errors.New(rep.Error)
	}
	fds, err := receivedFDs(oob[:oobn])
	if err != nil {
		return fmt.Errorf("the sandbox sent no descriptors: %v", err)
	}
	delivery := o.Incoming && rep.NoDelivery == ""
	if want := 1 + btoi(delivery) + len(o.LocalPorts) + len(rep.Mounted) + len(rep.Mapped); len(fds) != want {
		return fmt.Errorf("the sandbox sent %d descriptors, want %d", len(fds), want)
	}
	s.TUN = os.NewFile(uintptr(fds[0]), "tun")
	fds = fds[1:]
	if delivery {
		s.Delivery = &Delivery{supplier: os.NewFile(uintptr(fds[0]), "sandbox-sockets"), pid: rep.SupplierPID}
		fds = fds[1:]
	} else if o.Incoming {
		s.NoDelivery = rep.NoDelivery
	}
	mounts := fds[len(o.LocalPorts):]
	for i, fd := range mounts[:len(rep.Mounted)] {
		s.Remote = append(s.Remote, RemoteDir{Path: rep.Mounted[i], Device: os.NewFile(uintptr(fd), "fuse:"+rep.Mounted[i])})
	}
	for i, fd := range mounts[len(rep.Mounted):] {
		s.Mapped = append(s.Mapped, RemoteDir{Path: rep.Mapped[i], Device: os.NewFile(uintptr(fd), "fuse-mapped:"+rep.Mapped[i])})
	}
	s.Skipped = rep.Skipped
	for i, fd := range fds[:len(o.LocalPorts)] {
		f := os.NewFile(uintptr(fd), fmt.Sprintf("listener-%d", o.LocalPorts[i]))
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return err
		}
		s.Listeners = append(s.Listeners, ln)
	}
	return nil
}

// PID is the command's process (its init until Run).
func (s *Sandbox) PID() int { return s.cmd.Process.Pid }

// Run lets the command start and waits for it: its exit code, or -1 with the error.
func (s *Sandbox) Run() (int, error) {
	if _, err := s.ctl.Write([]byte("go")); err != nil {
		return -1, fmt.Errorf("starting the command: %w", err)
	}
	s.ctl.Close()
	return s.Wait()
}

// Wait waits for the command.
func (s *Sandbox) Wait() (int, error) {
	<-s.done
	if s.TUN != nil {
		s.TUN.Close()
	}
	for _, ln := range s.Listeners {
		ln.Close()
	}
	s.Delivery.close()
	return ExitCode(s.err)
}

// Done is closed when the command has exited.
func (s *Sandbox) Done() <-chan struct{} { return s.done }

// Signal sends sig to the command.
func (s *Sandbox) Signal(sig os.Signal) { _ = s.cmd.Process.Signal(sig) }

// Kill ends the command and waits for it.
func (s *Sandbox) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
	s.ctl.Close()
	s.Delivery.close()
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// receivedFDs are the descriptors of a message's one SCM_RIGHTS control message (oob).
func receivedFDs(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	if len(msgs) != 1 {
		return nil, fmt.Errorf("%d control messages, want 1", len(msgs))
	}
	return unix.ParseUnixRights(&msgs[0])
}
