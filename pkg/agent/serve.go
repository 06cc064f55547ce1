package agent

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/mirror"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/stateful"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// served is the located target process: its PID, its network namespace, and the capture
// every mirroring session shares.
type served struct {
	pid int
	// start is the process's start time: a PID reused by another process is not the target.
	start  uint64
	ns     *netns.Handle
	mirror *mirror.Hub
	// env and hostname are the container's as its runtime started it (nil and "" when no
	// runtime said: then /proc and the container's /etc/hostname stand in).
	env      []string
	hostname string
}

// envSource says where the target's environment comes from, for the agent's log.
func (s *served) envSource() string {
	if s.env != nil {
		return "the container runtime's spec"
	}
	return "/proc/PID/environ (no container runtime answered; a process that set its title may have overwritten it)"
}

// environ is the target container's environment, HOSTNAME included: every container has
// it, and the session's sandbox takes the pod's hostname from it.
func (s *served) environ(procRoot string) ([]string, error) {
	env := slices.Clone(s.env)
	if env == nil {
		var err error
		if env, err = stateful.ProcEnviron(procRoot, s.pid); err != nil {
			return nil, err
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "HOSTNAME=") {
			return env, nil
		}
	}
	host := s.hostname
	if host == "" {
		host = stateful.Hostname(procRoot, s.pid)
	}
	if host != "" {
		env = append(env, "HOSTNAME="+host)
	}
	return env, nil
}

func (s *served) close() {
	if s == nil {
		return
	}
	s.mirror.Close()
	_ = s.ns.Close()
}

// attach prepares to serve process pid, started at start (startTime), whose network
// namespace nsFile is.
func attach(pid int, start uint64, nsFile *os.File) *served {
	ns := netns.FromFile(nsFile)
	return &served{pid: pid, start: start, ns: ns, mirror: mirror.NewHub(ns)}
}

// session is one session on one connection: the agent serves every session on its target
// pod, each with the features its member's Hello names, so files are opened with each
// session's fs settings.
type session struct {
	name     string
	features mirrordv1alpha1.Features
	// dials bounds the connections this session dials from the target at once.
	dials *protocol.Limit

	mu     sync.Mutex
	target *served // the process fs and net were opened on
	fs     *stateful.FS
	net    *stateful.Network
}

// view returns the target and this session's files and network on it, opening them again
// when the agent has located a new process since.
func (s *session) view(a *Agent) (*served, *stateful.FS, *stateful.Network, error) {
	t, err := a.current()
	if err != nil {
		return nil, nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.target != t {
		fsys, err := stateful.OpenFS(a.procRoot, t.pid, s.features.FS)
		if err != nil {
			return nil, nil, nil, err
		}
		s.closeView()
		s.target, s.fs, s.net = t, fsys, stateful.NewNetwork(t.ns, fsys)
	}
	return t, s.fs, s.net, nil
}

func (s *session) closeView() {
	if s.fs != nil {
		_ = s.fs.Close()
	}
	s.target, s.fs, s.net = nil, nil, nil
}

func (s *session) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeView()
}

// ServeConn speaks the session protocol on conn until it closes: a handshake naming the
// session and its features, then each stream's operation on the located target.
func (a *Agent) ServeConn(ctx context.Context, conn net.Conn) error {
	defer conn.Close()
	var se *session
	var key []byte
	if k := a.key.Load(); k != nil {
		key = *k
	}
	tc := tls.Server(conn, a.tls)
	_, mux, err := a.handshakes.Run(conn, func() (protocol.Hello, *yamux.Session, error) {
		return protocol.AcceptAgent(tc, key, func(h protocol.Hello) error {
			if h.Kind != protocol.HelloAgent {
				return fmt.Errorf("this is an agent: it serves agent sessions, not %s", h.Kind)
			}
			if h.Session == "" {
				return errors.New("the Hello names no session")
			}
			se = &session{name: h.Session, dials: protocol.NewLimit(protocol.LimitDials, protocol.MaxDialsPerSession,
				"the session is dialling too many connections from the target at once; the newest is refused")}
			if h.Features != nil {
				se.features = *h.Features
			}
			if err := agentconfig.ValidateFeatures(se.features); err != nil {
				return fmt.Errorf("invalid session features: %w", err)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	defer se.close()
	defer mux.Close()
	go func() {
		select {
		case <-ctx.Done():
		case <-mux.CloseChan():
		}
		_ = mux.Close()
	}()
	protocol.AcceptStreams(mux, func(st *yamux.Stream) {
		if err := a.serveStream(ctx, se, mux, st); err != nil {
			klog.FromContext(ctx).V(2).Info("Stream ended", "session", se.name, "err", err)
		}
	})
	return nil
}

func (a *Agent) current() (*served, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.target == nil {
		if a.ready != nil {
			return nil, a.ready
		}
		return nil, errors.New("the target is not located")
	}
	return a.target, nil
}

func failure(err error) protocol.Response {
	r := protocol.Response{Error: err.Error()}
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		r.Errno = int(errno)
	case errors.As(err, new(*protocol.LimitError)):
		r.Errno = int(unix.EAGAIN)
	case errors.Is(err, os.ErrNotExist):
		r.Errno = int(unix.ENOENT)
	case errors.Is(err, os.ErrPermission):
		r.Errno = int(unix.EACCES)
	case errors.Is(err, stateful.ErrKernelFile):
		r.Errno = int(unix.EACCES)
	case errors.Is(err, stateful.ErrLocal):
		r.Errno = int(unix.EXDEV) // the local side serves it
	}
	return r
}

func (a *Agent) serveStream(ctx context.Context, se *session, mux *yamux.Session, st *yamux.Stream) error {
	var req protocol.Request
	if err := protocol.ReadMessage(st, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return protocol.WriteMessage(st, failure(err))
	}
	if err := permit(se.features, req); err != nil {
		return protocol.WriteMessage(st, failure(err))
	}
	t, fsys, tnet, err := se.view(a)
	if err != nil {
		return protocol.WriteMessage(st, failure(err))
	}
	var resp protocol.Response
	switch req.Op {
	case protocol.OpEnv:
		var raw []string
		if raw, err = t.environ(a.procRoot); err == nil {
			resp.Env, err = stateful.Env(raw, se.features.Env)
		}
	case protocol.OpStat:
		var s unix.Stat_t
		if s, err = fsys.Stat(req.Path); err == nil {
			resp.Stat = statOf(&s)
		}
	case protocol.OpReadDir:
		var entries []os.DirEntry
		if entries, err = fsys.ReadDir(req.Path); err == nil {
			for _, e := range entries {
				resp.Entries = append(resp.Entries, protocol.DirEntry{Name: e.Name(), Type: e.Type()})
			}
		}
	case protocol.OpReadlink:
		resp.Link, err = fsys.Readlink(req.Path)
	case protocol.OpMounts:
		var ms []stateful.Mount
		if ms, err = stateful.Mounts(a.procRoot, t.pid, fsys); err == nil {
			for _, m := range ms {
				resp.Mounts = append(resp.Mounts, protocol.Mount{Path: m.Path, Dir: m.Dir})
			}
		}
	case protocol.OpResolvConf:
		resp.Data, err = tnet.ResolvConf()
	case protocol.OpDNS:
		resp.Data, err = tnet.Exchange(ctx, req.Data)
	case protocol.OpOpen:
		return serveFile(st, fsys, req)
	case protocol.OpDial:
		return serveDial(ctx, st, tnet, req, se.dials)
	case protocol.OpIncoming:
		return a.serveIncoming(ctx, se, mux, st, t)
	}
	if err != nil {
		resp = failure(err)
	}
	return protocol.WriteMessage(st, resp)
}

func statOf(s *unix.Stat_t) *protocol.Stat {
	return &protocol.Stat{Mode: s.Mode, Size: s.Size, UID: s.Uid, GID: s.Gid, Nlink: uint64(s.Nlink), Ino: s.Ino,
		Mtime: s.Mtim.Nano(), Atime: s.Atim.Nano(), Ctime: s.Ctim.Nano()}
}

// serveFile answers FileOps on one open file until the stream closes.
func serveFile(st *yamux.Stream, fsys *stateful.FS, req protocol.Request) error {
	f, err := fsys.Open(req.Path, req.Flags, req.Mode)
	if err != nil {
		return protocol.WriteMessage(st, failure(err))
	}
	defer f.Close()
	if err := protocol.WriteMessage(st, protocol.Response{}); err != nil {
		return err
	}
	for {
		var op protocol.FileOp
		if err := protocol.ReadMessage(st, &op); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var resp protocol.Response
		switch op.Op {
		case "read":
			if op.Length < 0 || op.Length > protocol.MaxRead || op.Offset < 0 {
				resp = failure(fmt.Errorf("read of %d bytes at %d: want 0-%d bytes at a non-negative offset", op.Length, op.Offset, protocol.MaxRead))
				break
			}
			buf := make([]byte, op.Length)
			n, err := f.ReadAt(buf, op.Offset)
			if err != nil && !errors.Is(err, io.EOF) {
				resp = failure(err)
				break
			}
			resp.Data = buf[:n]
		case "write":
			n, err := f.WriteAt(op.Data, op.Offset)
			resp.N = n
			if err != nil {
				resp = failure(err)
			}
		case "stat":
			var s unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &s); err != nil {
				resp = failure(err)
				break
			}
			resp.Stat = statOf(&s)
		default:
			resp = failure(fmt.Errorf("unknown file operation %q", op.Op))
		}
		if err := protocol.WriteMessage(st, resp); err != nil {
			return err
		}
	}
}

// serveDial connects from the target's network and splices the stream with it.
func serveDial(ctx context.Context, st *yamux.Stream, n *stateful.Network, req protocol.Request, dials *protocol.Limit) error {
	release, err := dials.Acquire()
	if err != nil {
		return protocol.WriteMessage(st, failure(err))
	}
	c, err := n.Dial(ctx, req.Network, req.Address)
	release() // in flight only: a connected one holds no thread
	if err != nil {
		return protocol.WriteMessage(st, failure(err))
	}
	defer c.Close()
	if err := protocol.WriteMessage(st, protocol.Response{}); err != nil {
		return err
	}
	if req.Network == "udp" {
		return spliceDatagrams(st, c)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = protocol.Copy(c, st)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	})
	_, _ = protocol.Copy(st, c)
	_ = st.Close()
	wg.Wait()
	return nil
}

// spliceDatagrams carries UDP datagrams as 2-byte-length-prefixed records on the stream.
func spliceDatagrams(st *yamux.Stream, c net.Conn) error {
	errc := make(chan error, 2)
	go func() {
		var l [2]byte
		for {
			if _, err := io.ReadFull(st, l[:]); err != nil {
				errc <- nil
				return
			}
			buf := make([]byte, binary.BigEndian.Uint16(l[:]))
			if _, err := io.ReadFull(st, buf); err != nil {
				errc <- err
				return
			}
			if _, err := c.Write(buf); err != nil {
				errc <- err
				return
			}
		}
	}()
	go func() {
		buf := make([]byte, 65535)
		for {
			n, err := c.Read(buf)
			if err != nil {
				errc <- err
				return
			}
			if _, err := st.Write(append(binary.BigEndian.AppendUint16(nil, uint16(n)), buf[:n]...)); err != nil {
				errc <- err
				return
			}
		}
	}()
	err := <-errc
	_ = c.Close()
	_ = st.Close()
	return err
}
