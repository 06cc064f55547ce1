//go:build linux

package steal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
)

// Handler receives one stolen connection with the address it was sent to.
type Handler func(conn net.Conn, original netip.AddrPort)

// Stealer listens inside the target's network namespace for the connections its Redirector
// diverts.
type Stealer struct {
	ns    *netns.Handle
	ln    net.Listener
	redir redirector
	wg    sync.WaitGroup // the accept loop

	mu       sync.Mutex
	active   map[net.Conn]struct{} // stolen connections being served
	handlers sync.WaitGroup
}

// backlogDrain is how long Close keeps accepting connections redirected before the rules went.
const backlogDrain = 200 * time.Millisecond

// drainTimeout is how long Close lets stolen connections finish before closing them.
const drainTimeout = 2 * time.Second

// Backend is how the redirects are made.
type Backend string

const (
	// NFTables keeps a slot's rules in a table the kernel removes with the agent (Linux 5.12+).
	NFTables Backend = "nftables"
	// IPTablesNFT and IPTablesLegacy keep them in an iptables chain, removed by the agent's
	// supervisor or the next agent's sweep (see iptRedirector).
	IPTablesNFT    Backend = "iptables-nft"
	IPTablesLegacy Backend = "iptables-legacy"
)

// redirector is one slot's redirect rules in the target's network namespace.
type redirector interface {
	// Slot is the slot's place in the order of the target's stealing sessions (1-16).
	Slot() int
	// add starts diverting port (but connections from except), after checking the other
	// slots' steals of it.
	add(port uint16, filtered bool, except []netip.Addr) error
	remove(port uint16) error
	// releaseAll removes every port's rule; close then removes the slot.
	releaseAll() error
	close() error
}

// Start listens in ns on an ephemeral port, takes a slot there for session (named in the
// errors other sessions get) with backend's rules, and serves every diverted connection
// with h.
func Start(ctx context.Context, ns *netns.Handle, backend Backend, session string, h Handler) (*Stealer, error) {
	ln, err := ns.Listen(ctx, "tcp", "[::]:0", nil)
	if err != nil {
		return nil, fmt.Errorf("listening in the target's network namespace: %w", err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	// Connections a dead agent had stolen left conntrack entries that point at its gone
	// listener: remove them, so nothing of it stays. Not those of a port still in use: a
	// session ending in another agent has closed its listener but still answers what it
	// took, and those connections need their translation.
	if live, err := ns.TCPPortsInUse(); err == nil {
		_, _ = deleteConntrack(ns.Fd(), redirectedTo{other: true, live: live})
	}
	var redir redirector
	switch backend {
	case NFTables, "":
		redir, err = newNFT(ns.Fd(), session, port)
	case IPTablesNFT, IPTablesLegacy:
		redir, err = newIPT(ns, backend, session, port)
	default:
		err = fmt.Errorf("steal backend %q: want nftables, iptables-nft or iptables-legacy", backend)
	}
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	s := &Stealer{ns: ns, ln: ln, redir: redir, active: map[net.Conn]struct{}{}}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			orig, err := OriginalDst(c)
			if err != nil {
				_ = c.Close()
				continue
			}
			s.mu.Lock()
			s.active[c] = struct{}{}
			s.handlers.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.handlers.Done()
				h(c, orig)
				s.mu.Lock()
				delete(s.active, c)
				s.mu.Unlock()
			}()
		}
	})
	return s, nil
}

// Steal starts diverting new connections to port. filtered says the session takes only the
// requests of an HTTP filter, so other filtered sessions may share the port; a *ConflictError
// says why not.
func (s *Stealer) Steal(port uint16, filtered bool) error { return s.redir.add(port, filtered, nil) }

// StealExcept starts diverting new connections to port but those from the addresses in
// except: they keep reaching the target. A whole-port steal of a probed port leaves the
// node's addresses out, so the kubelet's probes get the target's own answers.
func (s *Stealer) StealExcept(port uint16, filtered bool, except []netip.Addr) error {
	return s.redir.add(port, filtered, except)
}

// Release stops diverting port; connections already stolen stay with the session.
func (s *Stealer) Release(port uint16) error { return s.redir.remove(port) }

// Slot is this session's place in the order of the target's stealing sessions.
func (s *Stealer) Slot() int { return s.redir.Slot() }

// Close removes the rules, stops listening, and removes the conntrack entries of the
// connections it stole.
func (s *Stealer) Close() error {
	err := s.redir.releaseAll()
	port := uint16(s.ln.Addr().(*net.TCPAddr).Port)
	// No new connection is redirected now; take in those already redirected (in the
	// listener's backlog) instead of resetting them, then stop.
	if tl, ok := s.ln.(*net.TCPListener); ok {
		_ = tl.SetDeadline(time.Now().Add(backlogDrain))
	} else {
		_ = s.ln.Close()
	}
	s.wg.Wait()
	_ = s.ln.Close()
	// Let the stolen connections finish, then end the rest: their conntrack entries may go
	// only once they are closed, or their packets would lose their translation and hang.
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		s.mu.Lock()
		for c := range s.active {
			_ = c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	if cerr := s.redir.close(); err == nil {
		err = cerr
	}
	if _, cerr := deleteConntrack(s.ns.Fd(), redirectedTo{port: port}); err == nil {
		err = cerr
	}
	return err
}

// DialOriginal connects to where a stolen connection was going, from inside the target's
// namespace, marked so this slot's and earlier slots' redirects let it through: later
// slots' sessions see the request next, then the target.
// client is the caller whose requests it carries (see ClientOf).
func (s *Stealer) DialOriginal(ctx context.Context, original netip.AddrPort, client string) (net.Conn, error) {
	mark := int(passthroughMark(s.redir.Slot()))
	c, err := s.ns.Dial(ctx, "tcp", original.String(), func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, mark)
		})
		return errors.Join(err, serr)
	})
	if err != nil {
		return nil, err
	}
	p := &passthroughConn{Conn: c, key: c.LocalAddr().String()}
	passthroughs.Store(p.key, client)
	return p, nil
}

// passthroughs maps the local address of each connection DialOriginal made to the client
// whose requests it carries. A later slot's session sees that connection arrive from the
// target's own address; ClientOf gives it the real caller instead.
var passthroughs sync.Map // local address → client address

// ClientOf is the caller of a stolen connection: its peer, or, for a connection an earlier
// slot of this agent passed on, the client that one came from. Ask once a request of c has
// arrived: the earlier slot registers the connection after connecting, before writing.
func ClientOf(c net.Conn) string {
	peer := c.RemoteAddr().String()
	if client, ok := passthroughs.Load(peer); ok {
		return client.(string)
	}
	return peer
}

// passthroughConn forgets its passthroughs entry when closed.
type passthroughConn struct {
	net.Conn
	key  string
	once sync.Once
}

func (p *passthroughConn) Close() error {
	p.once.Do(func() { passthroughs.Delete(p.key) })
	return p.Conn.Close()
}

func (p *passthroughConn) CloseWrite() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// OriginalDst is the destination a redirected connection had before NAT (SO_ORIGINAL_DST).
func OriginalDst(c net.Conn) (netip.AddrPort, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, errors.New("not a TCP connection")
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var ap netip.AddrPort
	var serr error
	err = raw.Control(func(fd uintptr) {
		// An IPv4 connection on a dual-stack socket still answers SOL_IP.
		var sa4 unix.RawSockaddrInet4
		l := uint32(unsafe.Sizeof(sa4))
		if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_IP, unix.SO_ORIGINAL_DST, uintptr(unsafe.Pointer(&sa4)), uintptr(unsafe.Pointer(&l)), 0); e == 0 {
			p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
			ap = netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(p[0])<<8|uint16(p[1]))
			return
		}
		var sa6 unix.RawSockaddrInet6
		l = uint32(unsafe.Sizeof(sa6))
		if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_IPV6, ip6tSoOriginalDst, uintptr(unsafe.Pointer(&sa6)), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
			serr = fmt.Errorf("SO_ORIGINAL_DST: %w", e)
			return
		}
		p := (*[2]byte)(unsafe.Pointer(&sa6.Port))
		ap = netip.AddrPortFrom(netip.AddrFrom16(sa6.Addr).Unmap(), uint16(p[0])<<8|uint16(p[1]))
	})
	return ap, errors.Join(err, serr)
}

// ip6tSoOriginalDst is IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h).
const ip6tSoOriginalDst = 80

// ResolveBackend turns the installation's choice (auto, or a Backend) into the Backend to
// use on this node, and says why. auto takes nftables when the kernel has owned tables
// (Linux 5.12+), else iptables through nf_tables, else legacy iptables.
func ResolveBackend(requested string) (Backend, string, error) {
	switch Backend(requested) {
	case NFTables, IPTablesNFT, IPTablesLegacy:
		return Backend(requested), "set by the installation", nil
	case "", "auto":
	default:
		return "", "", fmt.Errorf("steal backend %q: want auto, nftables, iptables-nft or iptables-legacy", requested)
	}
	ownerErr := probeOwnedTable()
	if ownerErr == nil {
		return NFTables, "the kernel has nftables owned tables", nil
	}
	out, err := exec.Command("iptables-nft", "-w", "5", "-t", "nat", "-S").CombinedOutput()
	if err == nil {
		return IPTablesNFT, fmt.Sprintf("no nftables owned tables (%v)", ownerErr), nil
	}
	return IPTablesLegacy, fmt.Sprintf("no nftables owned tables (%v) and iptables-nft fails (%v: %s)", ownerErr, err, strings.TrimSpace(string(out))), nil
}

// probeOwnedTable makes an owned table in this process's network namespace; the kernel
// removes it when the probe's netlink socket closes.
func probeOwnedTable() error {
	conn, err := nftables.New()
	if err != nil {
		return err
	}
	conn.CreateTable(&nftables.Table{Name: fmt.Sprintf("mirrord-probe-%d", os.Getpid()), Family: nftables.TableFamilyINet, Flags: nftables.TableFlagOwner})
	return conn.Flush()
}
