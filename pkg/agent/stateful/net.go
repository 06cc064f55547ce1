package stateful

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
)

// Network serves DNS and outgoing connections from inside the target's network namespace,
// with the target's own resolver configuration.
type Network struct {
	ns *netns.Handle
	fs *FS
}

// NewNetwork serves from ns, reading resolv.conf through fsys (the target's root).
func NewNetwork(ns *netns.Handle, fsys *FS) *Network { return &Network{ns: ns, fs: fsys} }

// Dial opens a TCP or UDP connection from the target's network namespace, as the target
// would; addr is IP:port.
func (n *Network) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		return nil, fmt.Errorf("network %q: want tcp or udp", network)
	}
	c, err := n.ns.Dial(ctx, network, addr, nil)
	if err != nil {
		return nil, fmt.Errorf("dialling %s %s from the target: %w", network, addr, err)
	}
	return c, nil
}

// ResolvConf is the target's /etc/resolv.conf: the local side gives it to the local process
// so names are searched as in the pod (search domains, ndots).
func (n *Network) ResolvConf() ([]byte, error) {
	f, err := n.fs.openat2("/etc/resolv.conf", 0, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("reading the target's resolv.conf: %w", err)
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Nameservers are the target's DNS servers (IP:53), in resolv.conf order.
func (n *Network) Nameservers() ([]string, error) {
	raw, err := n.ResolvConf()
	if err != nil {
		return nil, err
	}
	var out []string
	s := bufio.NewScanner(bytes.NewReader(raw))
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) >= 2 && f[0] == "nameserver" && net.ParseIP(f[1]) != nil {
			out = append(out, net.JoinHostPort(f[1], "53"))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the target's resolv.conf names no nameserver")
	}
	return out, nil
}

// dnsTimeout bounds one query to one server.
const dnsTimeout = 3 * time.Second

// Exchange sends one DNS query (wire format) to the target's nameservers from inside its
// network namespace and returns the first answer: over UDP, then over TCP when the answer is
// truncated; the next server is tried when one fails.
func (n *Network) Exchange(ctx context.Context, query []byte) ([]byte, error) {
	if len(query) < 12 {
		return nil, errors.New("DNS query shorter than its header")
	}
	servers, err := n.Nameservers()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, srv := range servers {
		resp, err := n.exchangeUDP(ctx, srv, query)
		if err == nil && len(resp) > 2 && resp[2]&0x02 != 0 { // TC: truncated
			resp, err = n.exchangeTCP(ctx, srv, query)
		}
		if err == nil {
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", srv, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("DNS query in the target's network failed: %w", errors.Join(errs...))
}

func (n *Network) exchangeUDP(ctx context.Context, srv string, query []byte) ([]byte, error) {
	c, err := n.ns.Dial(ctx, "udp", srv, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(deadline(ctx))
	if _, err := c.Write(query); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		m, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		if m >= 2 && buf[0] == query[0] && buf[1] == query[1] { // same ID
			return append([]byte(nil), buf[:m]...), nil
		}
	}
}

func (n *Network) exchangeTCP(ctx context.Context, srv string, query []byte) ([]byte, error) {
	c, err := n.ns.Dial(ctx, "tcp", srv, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(deadline(ctx))
	msg := binary.BigEndian.AppendUint16(nil, uint16(len(query)))
	if _, err := c.Write(append(msg, query...)); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	resp := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err = io.ReadFull(c, resp)
	return resp, err
}

func deadline(ctx context.Context) time.Time {
	d := time.Now().Add(dnsTimeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}
