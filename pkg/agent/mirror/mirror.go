// Package mirror copies the incoming TCP streams of a target's ports without touching them:
// AF_PACKET capture (TPACKET_V3) inside the target's network namespace, a BPF filter for the
// ports, and TCP reassembly. The target never depends on the agent: if the agent dies, the
// kernel drops its socket and nothing else changes.
package mirror

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/afpacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/reassembly"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// Conn is one mirrored connection: the bytes its client sent to the target, in order.
type Conn struct {
	Client, Server netip.AddrPort
	// Data ends with io.EOF when the connection ends, or with ErrFellBehind when the
	// handler read it too slowly.
	Data io.Reader
}

// Handler receives each new mirrored connection. A handler that reads slowly (or not at all)
// loses that connection, never the capture of the others.
type Handler func(*Conn)

// Mirror captures on every interface of the target's namespace but loopback.
type Mirror struct {
	handles []*afpacket.TPacket
	wg      sync.WaitGroup
	stop    chan struct{}
	// ports are the mirrored ports; SetPorts swaps them while the capture runs.
	ports atomic.Pointer[map[uint16]bool]
}

// Start mirrors ports of the target whose namespace is ns. Connections already open are
// skipped: a stream starts at its SYN.
func Start(ns *netns.Handle, ports []uint16, h Handler) (*Mirror, error) {
	filter, err := filterFor(ports)
	if err != nil {
		return nil, err
	}
	m := &Mirror{stop: make(chan struct{})}
	err = ns.Do(func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, ifc := range ifs {
			if ifc.Flags&net.FlagLoopback != 0 {
				continue
			}
			tp, err := afpacket.NewTPacket(afpacket.OptInterface(ifc.Name), afpacket.TPacketVersion3,
				afpacket.OptFrameSize(1<<16), afpacket.OptBlockSize(1<<20), afpacket.OptNumBlocks(16),
				afpacket.OptPollTimeout(100*time.Millisecond))
			if err != nil {
				return fmt.Errorf("capturing on %s: %w", ifc.Name, err)
			}
			if err := tp.SetBPF(filter); err != nil {
				tp.Close()
				return fmt.Errorf("filter on %s: %w", ifc.Name, err)
			}
			m.handles = append(m.handles, tp)
		}
		return nil
	})
	if err != nil {
		m.closeHandles()
		return nil, fmt.Errorf("mirror: %w (the agent needs NET_RAW in the target's namespace)", err)
	}
	if len(m.handles) == 0 {
		return nil, errors.New("mirror: the target's network namespace has no interface but loopback")
	}
	m.ports.Store(portSet(ports))
	for _, tp := range m.handles {
		m.wg.Go(func() { m.capture(tp, h) })
	}
	return m, nil
}

func portSet(ports []uint16) *map[uint16]bool {
	set := map[uint16]bool{}
	for _, p := range ports {
		set[p] = true
	}
	return &set
}

// SetPorts changes the mirrored ports without stopping the capture: the connections being
// mirrored carry on, new ones are mirrored by the new set.
func (m *Mirror) SetPorts(ports []uint16) error {
	filter, err := filterFor(ports)
	if err != nil {
		return err
	}
	m.ports.Store(portSet(ports))
	for _, tp := range m.handles {
		if err := tp.SetBPF(filter); err != nil {
			return fmt.Errorf("mirror: new filter: %w", err)
		}
	}
	return nil
}

// Close stops capturing and ends every open stream.
func (m *Mirror) Close() {
	close(m.stop)
	m.wg.Wait()
	m.closeHandles()
}

func (m *Mirror) closeHandles() {
	for _, tp := range m.handles {
		tp.Close()
	}
}

// idle is how long a stream may see no packet before it is ended.
const idle = 2 * time.Minute

// Bounds on what any client of the target (spoofed packets included) can make the capture
// hold: every mirrored port is reachable by anyone who can reach the target.
const (
	// MaxConns is how many connections one interface's capture tracks at once; a SYN
	// beyond starts nothing (protocol.LimitMirrorConns counts it).
	MaxConns = 4096
	// Out-of-order segments the reassembly holds before it skips ahead: per connection, and
	// for the whole capture (pages of 1900 bytes: 120 KiB and 15 MiB).
	maxOutOfOrderPagesPerConn = 64
	maxOutOfOrderPages        = 8192
)

func (m *Mirror) capture(tp *afpacket.TPacket, h Handler) {
	r := newReassembler(&m.ports, h)
	defer r.asm.FlushAll()
	lastFlush := time.Now()
	for {
		select {
		case <-m.stop:
			return
		default:
		}
		data, ci, err := tp.ZeroCopyReadPacketData()
		now := time.Now()
		if now.Sub(lastFlush) > 10*time.Second {
			r.asm.FlushCloseOlderThan(now.Add(-idle))
			lastFlush = now
		}
		if err != nil {
			if errors.Is(err, afpacket.ErrTimeout) || errors.Is(err, afpacket.ErrPoll) {
				continue
			}
			return
		}
		// The assembler ages streams by their packets' times, which the flush above compares
		// with now: stamp them with this process's monotonic clock, not the kernel's wall
		// clock, so a step of the node's clock can neither end live streams nor keep dead
		// ones.
		ci.Timestamp = now
		r.frame(data, ci)
	}
}

// reassembler turns one capture's frames into mirrored connections: decoding, admission
// (factory.admit) and TCP reassembly, all on the capture's goroutine.
type reassembler struct {
	f       *factory
	asm     *reassembly.Assembler
	eth     layers.Ethernet
	ip4     layers.IPv4
	ip6     layers.IPv6
	tcp     layers.TCP
	parser  *gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
}

func newReassembler(ports *atomic.Pointer[map[uint16]bool], h Handler) *reassembler {
	r := &reassembler{f: newFactory(ports, h)}
	r.asm = reassembly.NewAssembler(reassembly.NewStreamPool(r.f))
	r.asm.MaxBufferedPagesPerConnection, r.asm.MaxBufferedPagesTotal = maxOutOfOrderPagesPerConn, maxOutOfOrderPages
	r.parser = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &r.eth, &r.ip4, &r.ip6, &r.tcp)
	r.parser.IgnoreUnsupported = true
	return r
}

// frame takes one captured Ethernet frame; anything but a TCP segment is skipped.
func (r *reassembler) frame(data []byte, ci gopacket.CaptureInfo) {
	if err := r.parser.DecodeLayers(data, &r.decoded); err != nil {
		return
	}
	var netFlow gopacket.Flow
	isTCP := false
	for _, lt := range r.decoded {
		switch lt {
		case layers.LayerTypeIPv4:
			netFlow = r.ip4.NetworkFlow()
		case layers.LayerTypeIPv6:
			netFlow = r.ip6.NetworkFlow()
		case layers.LayerTypeTCP:
			isTCP = true
		}
	}
	if isTCP {
		r.segment(netFlow, &r.tcp, ci)
	}
}

// segment takes one TCP segment of netFlow, if the factory admits it.
func (r *reassembler) segment(netFlow gopacket.Flow, tcp *layers.TCP, ci gopacket.CaptureInfo) {
	if !r.f.admit(netFlow, tcp) {
		return
	}
	// The assembler keeps references to the payload: copy it out of the ring.
	tcp.Payload = append([]byte(nil), tcp.Payload...)
	r.asm.AssembleWithContext(netFlow, tcp, &captureContext{ci})
}

type captureContext struct{ ci gopacket.CaptureInfo }

func (c *captureContext) GetCaptureInfo() gopacket.CaptureInfo { return c.ci }

// factory makes the streams of one capture; everything in it runs on the capture's goroutine.
type factory struct {
	ports   *atomic.Pointer[map[uint16]bool]
	handler Handler
	// tracked are the connections being mirrored: only their packets, and a client's SYN to
	// a mirrored port while fewer than MaxConns are tracked, reach the reassembly, so stray
	// or spoofed packets make it hold nothing.
	tracked map[flowKey]bool
}

func newFactory(ports *atomic.Pointer[map[uint16]bool], h Handler) *factory {
	return &factory{ports: ports, handler: h, tracked: map[flowKey]bool{}}
}

// flowKey is a connection's 4-tuple, the same for both directions.
type flowKey struct{ lo, hi netip.AddrPort }

func keyOf(a, b netip.AddrPort) flowKey {
	if b.Compare(a) < 0 {
		a, b = b, a
	}
	return flowKey{a, b}
}

func endpoints(netFlow gopacket.Flow, tcp *layers.TCP) (src, dst netip.AddrPort) {
	a, _ := netip.AddrFromSlice(netFlow.Src().Raw())
	b, _ := netip.AddrFromSlice(netFlow.Dst().Raw())
	return netip.AddrPortFrom(a.Unmap(), uint16(tcp.SrcPort)), netip.AddrPortFrom(b.Unmap(), uint16(tcp.DstPort))
}

// admit says whether a packet goes to the reassembly: one of a tracked connection, or a
// client's SYN to a mirrored port that may start one.
func (f *factory) admit(netFlow gopacket.Flow, tcp *layers.TCP) bool {
	src, dst := endpoints(netFlow, tcp)
	if f.tracked[keyOf(src, dst)] {
		return true
	}
	if !tcp.SYN || tcp.ACK || !(*f.ports.Load())[uint16(tcp.DstPort)] {
		return false
	}
	if len(f.tracked) >= MaxConns {
		protocol.CountLimitHit(protocol.LimitMirrorConns)
		return false
	}
	return true
}

func (f *factory) New(netFlow, _ gopacket.Flow, tcp *layers.TCP, _ reassembly.AssemblerContext) reassembly.Stream {
	a, b := endpoints(netFlow, tcp)
	s := &stream{f: f, a: a, b: b, ignore: true}
	s.startOn(tcp)
	return s
}

// stream is one connection (both directions) as the assembler tracks it, by its 4-tuple.
type stream struct {
	f    *factory
	a, b netip.AddrPort // the 4-tuple, in the order of the packet that made the stream: the
	// assembler's "client to server" direction is a to b
	clientIsB bool // the connection's client is b (the stream was made by a server's packet)
	ignore    bool // not a connection a client opened to a mirrored port (yet)
	// buf carries the client's bytes to the handler, from the first of them: a connection
	// that never sends any (a SYN flood) is never delivered to anyone.
	buf            *connBuffer
	client, server netip.AddrPort
}

// startOn starts mirroring when tcp is a client's SYN to a mirrored port: only connections
// seen from their start are mirrored.
func (s *stream) startOn(tcp *layers.TCP) bool {
	if !s.ignore || !tcp.SYN || tcp.ACK || !(*s.f.ports.Load())[uint16(tcp.DstPort)] {
		return false
	}
	client, server := s.a, s.b
	if uint16(tcp.SrcPort) != client.Port() {
		client, server = server, client
		s.clientIsB = true
	}
	s.ignore, s.client, s.server = false, client, server
	s.f.tracked[keyOf(s.a, s.b)] = true
	return true
}

// Accept takes every packet of a mirrored connection. A stream the assembler made from a
// stray packet (the last ACK of a connection it had already closed) would otherwise swallow
// the next connection that reuses the same ports: its SYN starts it.
func (s *stream) Accept(tcp *layers.TCP, _ gopacket.CaptureInfo, _ reassembly.TCPFlowDirection, _ reassembly.Sequence, start *bool, _ reassembly.AssemblerContext) bool {
	if s.startOn(tcp) {
		*start = true
	}
	return !s.ignore
}

func (s *stream) ReassembledSG(sg reassembly.ScatterGather, _ reassembly.AssemblerContext) {
	dir, _, _, _ := sg.Info()
	if s.ignore || (dir == reassembly.TCPDirClientToServer) == s.clientIsB {
		return // the server's bytes
	}
	if n, _ := sg.Lengths(); n > 0 {
		if s.buf == nil {
			s.buf = newConnBuffer()
			go s.f.handler(&Conn{Client: s.client, Server: s.server, Data: s.buf})
		}
		s.buf.write(sg.Fetch(n))
	}
}

func (s *stream) ReassemblyComplete(reassembly.AssemblerContext) bool {
	if !s.ignore {
		delete(s.f.tracked, keyOf(s.a, s.b))
	}
	if s.buf != nil {
		s.buf.close()
	}
	return true
}
