package mirror

import (
	"errors"
	"io"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// TestSYNFloodHoldsNothing: SYN-only connections (a flood, spoofed or not) are delivered to
// nobody; at most MaxConns are tracked, the SYNs beyond are counted and dropped, and stray
// packets of unknown connections never reach the reassembly. A real connection is mirrored
// again once the flood's connections age out.
func TestSYNFloodHoldsNothing(t *testing.T) {
	var delivered atomic.Int64
	var ports atomic.Pointer[map[uint16]bool]
	ports.Store(portSet([]uint16{8080}))
	got := make(chan string, 1)
	r := newReassembler(&ports, func(c *Conn) {
		delivered.Add(1)
		b, _ := io.ReadAll(c.Data)
		got <- string(b)
	})
	f, asm := r.f, r.asm
	server := netip.MustParseAddrPort("10.0.0.2:8080")
	now := time.Now()
	send := func(src, dst netip.AddrPort, flags string, seq, ack uint32, payload string) {
		flow, tcp := packet(t, src, dst, flags, seq, ack, payload)
		now = now.Add(time.Microsecond)
		r.segment(flow, tcp, gopacket.CaptureInfo{Timestamp: now}) // as the capture does
	}
	hits := protocol.LimitHits(protocol.LimitMirrorConns)
	const beyond = 10
	for i := range MaxConns + beyond {
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 40000)
		send(client, server, "S", 1, 0, "")
	}
	if len(f.tracked) != MaxConns {
		t.Errorf("%d connections tracked, want %d", len(f.tracked), MaxConns)
	}
	if d := protocol.LimitHits(protocol.LimitMirrorConns) - hits; d != beyond {
		t.Errorf("%d SYNs counted beyond the limit, want %d", d, beyond)
	}
	// Stray segments of connections nobody saw start are not even looked at.
	for i := range 100 {
		send(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, 0, byte(i)}), 40000), server, "A", 5, 1, "data")
	}
	if len(f.tracked) != MaxConns {
		t.Errorf("stray packets tracked: %d", len(f.tracked))
	}
	// The flood ages out (the capture flushes idle streams); nothing was delivered.
	asm.FlushCloseOlderThan(now.Add(time.Second))
	if len(f.tracked) != 0 || delivered.Load() != 0 {
		t.Fatalf("after the flood aged out: %d tracked, %d delivered", len(f.tracked), delivered.Load())
	}
	// A real connection is mirrored.
	client := netip.MustParseAddrPort("10.3.0.1:41000")
	send(client, server, "S", 100, 0, "")
	send(server, client, "SA", 500, 101, "")
	send(client, server, "A", 101, 501, "")
	send(client, server, "A", 101, 501, "GET / HTTP/1.1\r\n\r\n")
	send(client, server, "FA", 119, 501, "")
	send(server, client, "FA", 501, 120, "")
	asm.FlushAll()
	select {
	case b := <-got:
		if b != "GET / HTTP/1.1\r\n\r\n" {
			t.Errorf("mirrored %q", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the real connection was not mirrored")
	}
}

// TestMirrorBuffersBounded: what mirrored connections buffer altogether is at most
// MaxBufferedBytes; the connection that would go beyond loses the rest (ErrBuffersFull,
// counted), and what a reader takes is given back.
func TestMirrorBuffersBounded(t *testing.T) {
	hits := protocol.LimitHits(protocol.LimitMirrorBytes)
	chunk := make([]byte, connBufferLimit-1) // each buffer just under its own limit
	var bufs []*connBuffer
	for range MaxBufferedBytes / len(chunk) {
		b := newConnBuffer()
		b.write(chunk)
		bufs = append(bufs, b)
	}
	over := newConnBuffer()
	over.write(chunk)
	if _, err := over.Read(make([]byte, 1)); !errors.Is(err, ErrBuffersFull) {
		t.Fatalf("the connection beyond the budget: %v, want ErrBuffersFull", err)
	}
	if protocol.LimitHits(protocol.LimitMirrorBytes) != hits+1 {
		t.Error("the hit was not counted")
	}
	// Draining one gives its bytes back to the budget.
	if _, err := io.ReadFull(bufs[0], make([]byte, len(chunk))); err != nil {
		t.Fatal(err)
	}
	again := newConnBuffer()
	again.write(chunk)
	if n, err := again.Read(make([]byte, 10)); err != nil || n != 10 {
		t.Errorf("after a reader drained one: %d %v", n, err)
	}
	for _, b := range append(bufs, again) {
		b.end(ErrFellBehind)
	}
	if n := buffered.Load(); n != 0 {
		t.Errorf("%d bytes still counted after every buffer ended", n)
	}
}

// FuzzMirrorPackets: whatever packets reach the capture (any client of the target can send
// them, spoofed or not), decoding and reassembly neither crash nor track more than MaxConns
// connections, and only a client's SYN to a mirrored port starts one.
func FuzzMirrorPackets(f *testing.F) {
	server := netip.MustParseAddrPort("10.0.0.2:8080")
	client := netip.MustParseAddrPort("10.0.0.1:40000")
	for _, p := range []struct {
		src, dst netip.AddrPort
		flags    string
		payload  string
	}{{client, server, "S", ""}, {server, client, "SA", ""}, {client, server, "A", "GET / HTTP/1.1\r\n\r\n"}, {client, server, "FA", ""}} {
		_, tcp := packet(f, p.src, p.dst, p.flags, 1, 1, p.payload)
		buf := gopacket.NewSerializeBuffer()
		ip := &layers.IPv4{SrcIP: p.src.Addr().AsSlice(), DstIP: p.dst.Addr().AsSlice(), Protocol: layers.IPProtocolTCP, Version: 4, IHL: 5, TTL: 64}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		_ = gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, &layers.Ethernet{EthernetType: layers.EthernetTypeIPv4, SrcMAC: make([]byte, 6), DstMAC: make([]byte, 6)}, ip, tcp, gopacket.Payload(p.payload))
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ports atomic.Pointer[map[uint16]bool]
		ports.Store(portSet([]uint16{8080}))
		r := newReassembler(&ports, func(c *Conn) { _, _ = io.Copy(io.Discard, c.Data) })
		// The input, and each of its halves, as frames: several segments of one flow.
		for _, frame := range [][]byte{data, data[:len(data)/2], data[len(data)/2:], data} {
			r.frame(frame, gopacket.CaptureInfo{Timestamp: time.Now()})
		}
		r.asm.FlushAll()
		if len(r.f.tracked) > MaxConns {
			t.Fatalf("%d connections tracked", len(r.f.tracked))
		}
	})
}
