// Package steal diverts new TCP connections to a target's ports to the agent, inside the
// target's network namespace, and hands them to the session or passes them on unchanged.
package steal

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// PassthroughMark marks the agent's own connections to the target's ports (requests it
// passes on): the redirect skips them, so nothing loops.
const PassthroughMark = 0x6d697272 // "mirr"

// Redirector diverts new connections to chosen ports of the target to the agent's listener.
type Redirector interface {
	// Add starts diverting port; Remove stops it. Live connections are never touched.
	Add(port uint16) error
	Remove(port uint16) error
	// Close removes every rule.
	Close() error
}

// nftRedirector keeps its rules in an nftables table owned by its netlink socket: the kernel
// deletes the table when the socket closes, so even a SIGKILL or OOM of the agent leaves no
// rule behind.
type nftRedirector struct {
	mu       sync.Mutex
	conn     *nftables.Conn
	table    *nftables.Table
	pre, out *nftables.Chain
	to       uint16
	rules    map[uint16][2]*nftables.Rule
}

// NewNFT creates the owned table name in the network namespace nsFd, redirecting to port to
// (the agent's listener in that namespace).
func NewNFT(nsFd int, name string, to uint16) (Redirector, error) {
	conn, err := nftables.New(nftables.WithNetNSFd(nsFd), nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	r := &nftRedirector{conn: conn, to: to, rules: map[uint16][2]*nftables.Rule{}}
	r.table = conn.AddTable(&nftables.Table{Name: name, Family: nftables.TableFamilyINet, Flags: nftables.TableFlagOwner})
	// Connections from outside the pod (other pods, Services, the node).
	r.pre = conn.AddChain(&nftables.Chain{Name: "prerouting", Table: r.table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	// Connections from inside the pod to its own addresses (sidecars, the app calling itself).
	r.out = conn.AddChain(&nftables.Chain{Name: "output", Table: r.table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	if err := conn.Flush(); err != nil {
		_ = conn.CloseLasting()
		return nil, fmt.Errorf("creating nftables table %s (the agent needs NET_ADMIN in the target's namespace): %w", name, err)
	}
	return r, nil
}

// match is "new TCP connection (SYN without ACK) to port".
func match(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
		// Only SYNs: redirecting mid-stream packets of a connection conntrack lost would
		// reset it.
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x12}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
	}
}

func (r *nftRedirector) redirect() []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(r.to)},
		&expr.Redir{RegisterProtoMin: 1},
	}
}

func (r *nftRedirector) Add(port uint16) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.rules[port]; ok {
		return nil
	}
	pre := r.conn.AddRule(&nftables.Rule{Table: r.table, Chain: r.pre, UserData: userData(port),
		Exprs: append(match(port), r.redirect()...)})
	local := append(match(port),
		// Only to the pod's own addresses, and never the agent's passthrough connections.
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(PassthroughMark)},
	)
	out := r.conn.AddRule(&nftables.Rule{Table: r.table, Chain: r.out, UserData: userData(port), Exprs: append(local, r.redirect()...)})
	if err := r.conn.Flush(); err != nil {
		return fmt.Errorf("adding the redirect of port %d: %w", port, err)
	}
	// Read back the handles the kernel gave the rules, to delete them later.
	for _, c := range []*nftables.Chain{r.pre, r.out} {
		rules, err := r.conn.GetRules(r.table, c)
		if err != nil {
			return err
		}
		for _, rl := range rules {
			if p, ok := portOf(rl.UserData); ok && p == port {
				if c == r.pre {
					pre = rl
				} else {
					out = rl
				}
			}
		}
	}
	r.rules[port] = [2]*nftables.Rule{pre, out}
	return nil
}

func (r *nftRedirector) Remove(port uint16) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs, ok := r.rules[port]
	if !ok {
		return nil
	}
	for _, rl := range rs {
		if err := r.conn.DelRule(rl); err != nil {
			return err
		}
	}
	if err := r.conn.Flush(); err != nil {
		return fmt.Errorf("removing the redirect of port %d: %w", port, err)
	}
	delete(r.rules, port)
	return nil
}

// Close deletes the table; closing the socket would too, this just does not wait for it.
func (r *nftRedirector) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conn.DelTable(r.table)
	err := r.conn.Flush()
	if cerr := r.conn.CloseLasting(); err == nil {
		err = cerr
	}
	return err
}

// userData tags a rule with its port so Add can find the kernel's handle for it.
func userData(port uint16) []byte { return binary.BigEndian.AppendUint16([]byte("mirrord:"), port) }

func portOf(ud []byte) (uint16, bool) {
	if len(ud) != len("mirrord:")+2 || string(ud[:8]) != "mirrord:" {
		return 0, false
	}
	return binary.BigEndian.Uint16(ud[8:]), true
}
