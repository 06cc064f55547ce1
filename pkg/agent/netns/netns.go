// Package netns runs code and opens sockets inside another process's network namespace.
//
// setns(2) moves one thread, and Go schedules goroutines over many: every switch happens on
// a fresh goroutine locked to its thread, which switches back before it is unlocked, or dies
// with the goroutine when it cannot. A socket stays in the namespace it was created in, so
// connections and listeners made here are used from any goroutine afterwards.
package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Handle is an open network namespace, or this process's own (Current).
type Handle struct{ f *os.File }

// Current is this process's own network namespace: code runs and sockets open where they
// are, with no setns (which needs CAP_SYS_ADMIN even to enter the namespace one is in).
func Current() *Handle { return &Handle{} }

// Open opens the network namespace at path (/proc/PID/ns/net, or a bind mount of one).
func Open(path string) (*Handle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace: %w", err)
	}
	return &Handle{f: f}, nil
}

// OfPID opens the network namespace of process pid under procRoot (normally /proc).
func OfPID(procRoot string, pid int) (*Handle, error) {
	return Open(fmt.Sprintf("%s/%d/ns/net", procRoot, pid))
}

// Fd is the namespace's file descriptor (for netlink and nftables clients); -1 for Current.
func (h *Handle) Fd() int {
	if h.f == nil {
		return -1
	}
	return int(h.f.Fd())
}

// Close releases the namespace; sockets made in it stay valid.
func (h *Handle) Close() error {
	if h == nil || h.f == nil {
		return nil
	}
	return h.f.Close()
}

// Do runs fn on a thread inside the namespace and returns its error.
func (h *Handle) Do(fn func() error) error {
	if h.f == nil {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("opening this thread's network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(h.f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering the target's network namespace (the agent needs CAP_SYS_ADMIN): %w", err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread exits with this goroutine instead of running others
			// in the wrong namespace.
			errc <- errors.Join(ferr, fmt.Errorf("leaving the target's network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Dial connects from inside the namespace. addr must be numeric: names are resolved by the
// caller (in the target's DNS), not in the agent's own namespace.
func (h *Handle) Dial(ctx context.Context, network, addr string, control func(network, address string, c syscall.RawConn) error) (net.Conn, error) {
	if err := numeric(addr); err != nil {
		return nil, err
	}
	var conn net.Conn
	err := h.Do(func() error {
		var err error
		d := net.Dialer{Control: control}
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// Listen opens a stream listener inside the namespace.
func (h *Handle) Listen(ctx context.Context, network, addr string, control func(network, address string, c syscall.RawConn) error) (net.Listener, error) {
	var l net.Listener
	err := h.Do(func() error {
		var err error
		lc := net.ListenConfig{Control: control}
		l, err = lc.Listen(ctx, network, addr)
		return err
	})
	return l, err
}

// ListenPacket opens a datagram socket inside the namespace.
func (h *Handle) ListenPacket(ctx context.Context, network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := h.Do(func() error {
		var err error
		var lc net.ListenConfig
		pc, err = lc.ListenPacket(ctx, network, addr)
		return err
	})
	return pc, err
}

func numeric(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("address %q: want an IP address; names are resolved through the target's DNS first", addr)
	}
	return nil
}

// FromFile wraps an already open namespace file; the Handle owns it.
func FromFile(f *os.File) *Handle { return &Handle{f: f} }

// ListeningTCPPorts are the TCP ports something listens on in the namespace.
func (h *Handle) ListeningTCPPorts() (map[uint16]bool, error) { return h.tcpPorts(true) }

// TCPPortsInUse are the local ports of the namespace's TCP sockets that listen or have a
// connection not yet over (not TIME_WAIT): an accepted connection keeps its listener's port
// after the listener closed.
func (h *Handle) TCPPortsInUse() (map[uint16]bool, error) { return h.tcpPorts(false) }

func (h *Handle) tcpPorts(listening bool) (map[uint16]bool, error) {
	ports := map[uint16]bool{}
	err := h.Do(func() error {
		for _, f := range []string{"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"} {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			for _, line := range strings.Split(string(b), "\n")[1:] {
				fs := strings.Fields(line)
				if len(fs) < 4 || (listening && fs[3] != "0A") || fs[3] == "06" || fs[3] == "07" { // LISTEN; TIME_WAIT and CLOSE are over
					continue
				}
				_, hexPort, ok := strings.Cut(fs[1], ":")
				if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil {
					ports[uint16(p)] = true
				}
			}
		}
		return nil
	})
	return ports, err
}
