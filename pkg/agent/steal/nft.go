//go:build linux

package steal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

const (
	// MaxSlots is how many sessions can steal from one target at once.
	MaxSlots = 16
	// markBase tags the agents' passthrough connections; the low 16 bits say which slots
	// have seen them.
	markBase = 0x6d690000 // "mi"
	markMask = 0xffff0000
	// tablePrefix names the slot tables: mirrord-steal-01 ... mirrord-steal-16.
	tablePrefix = "mirrord-steal-"
)

// passthroughMark is the mark of slot's passthrough connections: every slot up to it.
func passthroughMark(slot int) uint32 { return markBase | (1<<slot - 1) }

// ConflictError says a port cannot be stolen because of another session's steal.
type ConflictError struct {
	Port    uint16
	Session string
	Whole   bool // the other session steals the whole port
}

func (e *ConflictError) Error() string {
	if e.Whole {
		return fmt.Sprintf("port %d is already stolen whole by session %s: only one session can steal a port without an HTTP filter; add feature.network.incoming.httpFilter, or mirror instead", e.Port, e.Session)
	}
	return fmt.Sprintf("port %d is stolen with an HTTP filter by session %s: a steal without a filter would take its requests; add feature.network.incoming.httpFilter", e.Port, e.Session)
}

// nftRedirector keeps one slot's rules in its owned table: the kernel deletes the table when
// the agent's socket closes, so even a SIGKILL or OOM of the agent leaves no rule behind.
type nftRedirector struct {
	mu       sync.Mutex
	conn     *nftables.Conn
	session  string
	slot     int
	table    *nftables.Table
	pre, out *nftables.Chain
	to       uint16
	rules    map[uint16][]*nftables.Rule // a port's exceptions, its redirect, its local redirect
}

// newNFT takes the first free slot in the network namespace nsFd for session, redirecting
// to port to (the agent's listener in that namespace).
func newNFT(nsFd int, session string, to uint16) (*nftRedirector, error) {
	conn, err := nftables.New(nftables.WithNetNSFd(nsFd), nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	taken := func(name string) bool {
		ts, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
		if err != nil {
			return false
		}
		for _, t := range ts {
			if t.Name == name {
				return true
			}
		}
		return false
	}
	for slot := 1; slot <= MaxSlots; slot++ {
		if taken(fmt.Sprintf("%s%02d", tablePrefix, slot)) {
			continue
		}
		r := &nftRedirector{conn: conn, session: session, slot: slot, to: to, rules: map[uint16][]*nftables.Rule{}}
		// Exclusive create: the table's name is the slot's lock.
		r.table = conn.CreateTable(&nftables.Table{Name: fmt.Sprintf("%s%02d", tablePrefix, slot), Family: nftables.TableFamilyINet, Flags: nftables.TableFlagOwner})
		prio := nftables.ChainPriority(-150 + slot) // before iptables' NAT (-100), in slot order
		// Connections from outside the pod (other pods, Services, the node).
		r.pre = conn.AddChain(&nftables.Chain{Name: "prerouting", Table: r.table, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: &prio})
		// Connections from inside the pod to its own addresses, and earlier slots' passthroughs.
		r.out = conn.AddChain(&nftables.Chain{Name: "output", Table: r.table, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookOutput, Priority: &prio})
		keepConntrack(conn, r.table)
		err := conn.Flush()
		if err == nil {
			return r, nil
		}
		// Another agent took the slot meanwhile: EEXIST, or EPERM as its table is owned.
		if !(errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.EPERM)) || !taken(r.table.Name) {
			_ = conn.CloseLasting()
			return nil, fmt.Errorf("creating nftables table %s (the agent needs NET_ADMIN in the target's namespace): %w", r.table.Name, err)
		}
	}
	_ = conn.CloseLasting()
	return nil, fmt.Errorf("%d sessions already steal from this target: end one first", MaxSlots)
}

func (r *nftRedirector) Slot() int { return r.slot }

// keepConntrack adds a chain no packet enters, holding one rule that uses conntrack: it
// keeps the kernel tracking connections in the namespace for as long as the table exists.
// Without it, removing the last redirect (releaseAll, when a session ends) turned tracking
// off in a namespace where no one else used it, and the connections stolen and still being
// answered lost their translation: the answers left from the agent's port and the clients
// reset them (seen as hung requests when a filtered steal ended).
func keepConntrack(conn *nftables.Conn, table *nftables.Table) {
	c := conn.AddChain(&nftables.Chain{Name: "keep-conntrack", Table: table})
	conn.AddRule(&nftables.Rule{Table: table, Chain: c, Exprs: []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitINVALID), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Counter{},
	}})
}

// match is "new TCP connection (SYN without ACK) to port, not yet seen by this slot".
func (r *nftRedirector) match(port uint16) []expr.Any {
	bit := uint32(1) << (r.slot - 1)
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
		// Skip the passthroughs of this slot and the later ones.
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(markMask | bit), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(markBase | bit)},
	}
}

func (r *nftRedirector) redirect() []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(r.to)},
		&expr.Redir{RegisterProtoMin: 1},
	}
}

// except is "from a": accepted before the redirect, so it goes on to the target.
func except(a netip.Addr) []expr.Any {
	proto, offset := byte(unix.NFPROTO_IPV4), uint32(12)
	if a.Is6() {
		proto, offset = unix.NFPROTO_IPV6, 8
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: uint32(a.BitLen() / 8)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// add starts diverting port but connections from exceptAddrs, after checking the other
// slots' steals of it. Every rule of the port carries the same userdata, so other agents see
// the steal and this one finds the rules' handles.
func (r *nftRedirector) add(port uint16, filtered bool, exceptAddrs []netip.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.rules[port]; ok {
		return nil
	}
	if err := r.conflict(port, filtered); err != nil {
		return err
	}
	ud := ruleData{port: port, filtered: filtered, session: r.session}.encode()
	var added []*nftables.Rule
	for _, a := range exceptAddrs {
		added = append(added, r.conn.AddRule(&nftables.Rule{Table: r.table, Chain: r.pre, UserData: ud, Exprs: append(r.match(port), except(a.Unmap())...)}))
	}
	added = append(added, r.conn.AddRule(&nftables.Rule{Table: r.table, Chain: r.pre, UserData: ud, Exprs: append(r.match(port), r.redirect()...)}))
	local := append(r.match(port),
		// Only to the pod's own addresses.
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	)
	added = append(added, r.conn.AddRule(&nftables.Rule{Table: r.table, Chain: r.out, UserData: ud, Exprs: append(local, r.redirect()...)}))
	if err := r.conn.Flush(); err != nil {
		return fmt.Errorf("adding the redirect of port %d: %w", port, err)
	}
	// Two sessions may have checked at once: the later slot looks again and backs off.
	if err := r.conflict(port, filtered); err != nil {
		for _, rl := range added {
			_ = r.conn.DelRule(rl)
		}
		_ = r.conn.Flush()
		return err
	}
	// Read back the handles the kernel gave the rules, to delete them later.
	var rules []*nftables.Rule
	for _, c := range []*nftables.Chain{r.pre, r.out} {
		got, err := r.conn.GetRules(r.table, c)
		if err != nil {
			return err
		}
		for _, rl := range got {
			if d, ok := parseRuleData(rl.UserData); ok && d.port == port {
				rules = append(rules, rl)
			}
		}
	}
	r.rules[port] = rules
	return nil
}

// conflict looks at the other slots' steals of port.
func (r *nftRedirector) conflict(port uint16, filtered bool) error {
	tables, err := r.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("listing nftables tables: %w", err)
	}
	for _, t := range tables {
		if !strings.HasPrefix(t.Name, tablePrefix) || t.Name == r.table.Name {
			continue
		}
		rules, err := r.conn.GetRules(t, &nftables.Chain{Name: "prerouting", Table: t})
		if err != nil {
			continue // the table went away meanwhile
		}
		for _, rl := range rules {
			d, ok := parseRuleData(rl.UserData)
			if !ok || d.port != port {
				continue
			}
			if !d.filtered || !filtered {
				return &ConflictError{Port: port, Session: d.session, Whole: !d.filtered}
			}
		}
	}
	return nil
}

func (r *nftRedirector) remove(port uint16) error {
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

// releaseAll removes every redirect; the chains and the conntrack keeper stay until close,
// so the connections already redirected keep their translation while they finish.
func (r *nftRedirector) releaseAll() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conn.FlushChain(r.pre)
	r.conn.FlushChain(r.out)
	if err := r.conn.Flush(); err != nil {
		return fmt.Errorf("removing the redirects: %w", err)
	}
	clear(r.rules)
	return nil
}

// close deletes the table; closing the socket would too, this just does not wait for it.
func (r *nftRedirector) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conn.DelTable(r.table)
	err := r.conn.Flush()
	if cerr := r.conn.CloseLasting(); err == nil {
		err = cerr
	}
	return err
}

// ruleData is what a rule says of itself (its userdata), for other agents and for finding
// the rule's handle.
type ruleData struct {
	port     uint16
	filtered bool
	session  string
}

const rulePrefix = "mirrord1:"

func (d ruleData) encode() []byte {
	b := binary.BigEndian.AppendUint16([]byte(rulePrefix), d.port)
	if d.filtered {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return append(b, d.session...)
}

func parseRuleData(b []byte) (ruleData, bool) {
	if len(b) < len(rulePrefix)+3 || !bytes.HasPrefix(b, []byte(rulePrefix)) {
		return ruleData{}, false
	}
	b = b[len(rulePrefix):]
	return ruleData{port: binary.BigEndian.Uint16(b), filtered: b[2] == 1, session: string(b[3:])}, true
}
