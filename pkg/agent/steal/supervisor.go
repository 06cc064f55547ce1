//go:build linux

package steal

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
)

// supervisorEnv tells a supervised agent the descriptor of its socket to the supervisor.
const supervisorEnv = "MIRRORD_STEAL_SUPERVISOR_FD"

// Supervise runs cmd (an agent that steals with iptables) as its child and, once it has
// exited however it exited (SIGKILL, OOM), removes the iptables chains it reported, in the
// network namespaces it reported them in. It forwards SIGTERM and SIGINT to the child and
// returns the child's exit error. The supervisor is the container's first process, so the
// kernel's OOM killer and a kill of the agent process leave it to clean up; a kill of the
// whole container is left to the next agent's sweep.
func Supervise(cmd *exec.Cmd) error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("supervisor socket: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "supervisor"), os.NewFile(uintptr(fds[1]), "supervised")
	defer ours.Close()
	cmd.ExtraFiles = append(cmd.ExtraFiles, theirs)
	cmd.Env = append(cmd.Environ(), supervisorEnv+"="+strconv.Itoa(2+len(cmd.ExtraFiles)))
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		theirs.Close()
		return err
	}
	theirs.Close()
	var (
		mu       sync.Mutex
		reported = map[nsKey]*reportedNamespace{}
		received = make(chan struct{})
	)
	go func() {
		defer close(received)
		for {
			r, err := receiveChain(ours)
			if err != nil {
				return // the child is gone
			}
			mu.Lock()
			r.addTo(reported)
			mu.Unlock()
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var waitErr error
	for waiting := true; waiting; {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case waitErr = <-done:
			waiting = false
		}
	}
	// The report socket closes with the child; allow for a descendant still holding it.
	select {
	case <-received:
	case <-time.After(2 * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	var errs []error
	for _, n := range reported {
		errs = append(errs, n.cleanUp())
		n.ns.Close()
	}
	if err := errors.Join(errs...); err != nil {
		klog.Background().Error(err, "Removing the agent's steal rules after it exited")
	}
	return waitErr
}

// chainReport is a chain a supervised agent may have made.
type chainReport struct {
	ns      *netns.Handle
	backend Backend
	chain   string
}

// nsKey identifies a network namespace (its file's device and inode) and a backend.
type nsKey struct {
	dev, ino uint64
	backend  Backend
}

// reportedNamespace is a namespace a supervised agent steals in, held open, with the chains
// it may have made there.
type reportedNamespace struct {
	ns      *netns.Handle
	backend Backend
	chains  []string
}

// addTo files r under its namespace: the agent reports every slot it tries, and each
// steal it starts again, each time with a new descriptor of the same namespace; one is
// kept.
func (r chainReport) addTo(m map[nsKey]*reportedNamespace) {
	var st unix.Stat_t
	if err := unix.Fstat(r.ns.Fd(), &st); err != nil {
		st.Ino = uint64(len(m)) + 1<<63 // unidentifiable: keep it apart
	}
	key := nsKey{dev: st.Dev, ino: st.Ino, backend: r.backend}
	n, ok := m[key]
	if !ok {
		n = &reportedNamespace{ns: r.ns, backend: r.backend}
		m[key] = n
	} else {
		r.ns.Close()
	}
	if !slices.Contains(n.chains, r.chain) {
		n.chains = append(n.chains, r.chain)
	}
}

// cleanUp removes the chains of dead agents (the supervised one is dead now: its chains
// are among them), and a reported chain that exists without an owner (the agent died
// making it); never another live agent's chain of the same name (a slot the agent found
// taken, or took after this one left it). Then the conntrack entries of connections
// redirected to listeners that are gone.
func (n *reportedNamespace) cleanUp() error {
	v4, v6 := binaries(n.backend)
	var errs []error
	for _, bin := range []string{v4, v6} {
		x := xtables{n.ns, bin}
		if _, err := x.run("-S", "PREROUTING"); err != nil {
			continue // no such table (IPv6 without nat)
		}
		errs = append(errs, sweepDead(x, "/proc", n.chains...))
	}
	if live, err := n.ns.TCPPortsInUse(); err == nil {
		_, err = deleteConntrack(n.ns.Fd(), redirectedTo{other: true, live: live})
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// reportChain tells the supervisor, when this agent has one, that it may make chain in ns.
func reportChain(ns *netns.Handle, backend Backend, chain string) error {
	v := os.Getenv(supervisorEnv)
	if v == "" {
		return nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("%s=%q: %w", supervisorEnv, v, err)
	}
	// Inherited without close-on-exec: keep it from the iptables commands this agent runs.
	unix.CloseOnExec(fd)
	msg := []byte(string(backend) + " " + chain)
	if err := unix.Sendmsg(fd, msg, unix.UnixRights(ns.Fd()), nil, 0); err != nil {
		return fmt.Errorf("telling the supervisor of chain %s: %w", chain, err)
	}
	return nil
}

// receiveChain reads one report, with the namespace's descriptor.
func receiveChain(sock *os.File) (chainReport, error) {
	buf, oob := make([]byte, 256), make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return chainReport{}, err
	}
	if n == 0 {
		return chainReport{}, errors.New("supervised agent closed its socket")
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(cmsgs) != 1 {
		return chainReport{}, fmt.Errorf("report without a namespace: %v", err)
	}
	fds, err := unix.ParseUnixRights(&cmsgs[0])
	if err != nil || len(fds) != 1 {
		return chainReport{}, fmt.Errorf("report without a namespace: %v", err)
	}
	backend, chain, _ := strings.Cut(string(buf[:n]), " ")
	return chainReport{ns: netns.FromFile(os.NewFile(uintptr(fds[0]), "netns")), backend: Backend(backend), chain: chain}, nil
}
