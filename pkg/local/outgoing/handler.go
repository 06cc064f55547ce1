package outgoing

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// Handler carries the sandbox's flows (it is a netstack.Handler).
type Handler struct {
	// Remote is the session; Filter chooses per destination (nil: all remote); DNSFilter
	// per name (nil: as Filter says).
	Remote    *protocol.Client
	Filter    *Filter
	DNSFilter *Filter
	// Search are the search domains of the command's resolv.conf, for DNSFilter's short names.
	Search []string
	// TCP, UDP and DNS say whether each goes through the target at all.
	TCP, UDP, DNS bool
	// DNSAddr is the nameserver address the sandbox's resolv.conf names.
	DNSAddr netip.Addr
	// LocalResolver is the developer's nameserver (ip:53), for names resolved locally.
	LocalResolver string

	mu    sync.Mutex
	names map[netip.Addr][]string
}

// udpIdle ends a UDP flow nobody has used for this long.
const udpIdle = 2 * time.Minute

// namesOf is what the command resolved ip from.
func (h *Handler) namesOf(ip netip.Addr) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.names[ip.Unmap()]
}

func (h *Handler) remote(network string, dst netip.AddrPort) bool {
	if (network == "tcp" && !h.TCP) || (network == "udp" && !h.UDP) {
		return false
	}
	return h.Filter.Remote(dst.Addr(), dst.Port(), h.namesOf(dst.Addr()))
}

// DialTCP implements netstack.Handler.
func (h *Handler) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if h.remote("tcp", dst) {
		return h.Remote.Dial("tcp", dst.String())
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", dst.String())
}

// ServeUDP implements netstack.Handler.
func (h *Handler) ServeUDP(ctx context.Context, c net.Conn, dst netip.AddrPort) {
	if dst.Addr() == h.DNSAddr && dst.Port() == 53 {
		h.serveDNS(ctx, c)
		return
	}
	var up net.Conn
	var err error
	if h.remote("udp", dst) {
		up, err = h.Remote.Dial("udp", dst.String())
	} else {
		up, err = net.Dial("udp", dst.String())
	}
	if err != nil {
		return
	}
	defer up.Close()
	go func() {
		buf := make([]byte, 65535)
		for {
			n, err := up.Read(buf)
			if err != nil {
				c.Close()
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 65535)
	for {
		_ = c.SetReadDeadline(time.Now().Add(udpIdle))
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := up.Write(buf[:n]); err != nil {
			return
		}
	}
}

// serveDNS answers the sandbox's nameserver: from the target's network, or locally for
// names the filter keeps local; it remembers which names the answers' addresses came from.
func (h *Handler) serveDNS(ctx context.Context, c net.Conn) {
	buf := make([]byte, 65535)
	for {
		_ = c.SetReadDeadline(time.Now().Add(udpIdle))
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		q := append([]byte(nil), buf[:n]...)
		go func() {
			answer, err := h.resolve(ctx, q)
			if err != nil {
				answer = servfail(q)
			}
			if answer != nil {
				h.learn(answer)
				_, _ = c.Write(answer)
			}
		}()
	}
}

func (h *Handler) resolve(ctx context.Context, q []byte) ([]byte, error) {
	var p dnsmessage.Parser
	hdr, err := p.Start(q)
	if err != nil {
		return nil, err
	}
	question, err := p.Question()
	if err != nil {
		return nil, err
	}
	_ = hdr
	if name := question.Name.String(); h.DNS && h.Filter.RemoteName(name) && h.DNSFilter.ResolveRemotely(name, h.Search) {
		r, err := h.Remote.Do(protocol.Request{Op: protocol.OpDNS, Data: q})
		return r.Data, err
	}
	if h.LocalResolver == "" {
		return nil, errors.New("no local nameserver")
	}
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "udp", h.LocalResolver)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	return buf[:n], err
}

// servfail answers q with SERVFAIL, so the command's resolver fails fast.
func servfail(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	a := append([]byte(nil), q...)
	a[2] |= 0x80         // QR
	a[3] = a[3]&0xf0 | 2 // RCODE=SERVFAIL
	return a
}

// learn records address→name from an answer, following CNAMEs back to the question.
func (h *Handler) learn(answer []byte) {
	var p dnsmessage.Parser
	if _, err := p.Start(answer); err != nil {
		return
	}
	q, err := p.Question()
	if err != nil {
		return
	}
	_ = p.SkipAllQuestions()
	qname := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.names == nil {
		h.names = map[netip.Addr][]string{}
	}
	for {
		rh, err := p.AnswerHeader()
		if err != nil {
			return
		}
		var ip netip.Addr
		switch rh.Type {
		case dnsmessage.TypeA:
			r, err := p.AResource()
			if err != nil {
				return
			}
			ip = netip.AddrFrom4(r.A)
		case dnsmessage.TypeAAAA:
			r, err := p.AAAAResource()
			if err != nil {
				return
			}
			ip = netip.AddrFrom16(r.AAAA).Unmap()
		default:
			_ = p.SkipAnswer()
			continue
		}
		names := h.names[ip]
		for _, n := range []string{qname, strings.TrimSuffix(strings.ToLower(rh.Name.String()), ".")} {
			if !contains(names, n) {
				names = append(names, n)
			}
		}
		h.names[ip] = names
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// LocalNameserver is the first nameserver of the developer's /etc/resolv.conf, as ip:53.
func LocalNameserver() string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if ip, err := netip.ParseAddr(f[1]); err == nil {
				return netip.AddrPortFrom(ip, 53).String()
			}
		}
	}
	return ""
}

// SandboxResolvConf is the target's resolv.conf with its nameservers replaced by ns: the
// search list and options (ndots) stay, so short names resolve as in the pod.
func SandboxResolvConf(target []byte, ns netip.Addr) []byte {
	var b strings.Builder
	b.WriteString("# kubectl-mirrord: the target's resolv.conf, answered through the session\n")
	b.WriteString("nameserver " + ns.String() + "\n")
	for _, line := range strings.Split(string(target), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "nameserver" || strings.HasPrefix(f[0], "#") {
			continue
		}
		b.WriteString(strings.Join(f, " ") + "\n")
	}
	return []byte(b.String())
}
