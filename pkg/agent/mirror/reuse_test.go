package mirror

import (
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/reassembly"
)

// TestPortsReusedAfterAStrayPacket: the last ACK of a finished connection makes the
// assembler a new stream for its 4-tuple; a later connection on the same ports (a client
// reusing its port) is still mirrored.
func TestPortsReusedAfterAStrayPacket(t *testing.T) {
	var mu sync.Mutex
	var got []string
	var wg sync.WaitGroup
	var ports atomic.Pointer[map[uint16]bool]
	ports.Store(portSet([]uint16{8080}))
	f := newFactory(&ports, func(c *Conn) {
		wg.Add(1)
		defer wg.Done()
		b, _ := io.ReadAll(c.Data)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	})
	asm := reassembly.NewAssembler(reassembly.NewStreamPool(f))
	client, server := net.IPv4(10, 0, 0, 1).To4(), net.IPv4(10, 0, 0, 2).To4()
	now := time.Now()
	c, sv := netip.AddrPortFrom(netip.AddrFrom4([4]byte(client)), 40000), netip.AddrPortFrom(netip.AddrFrom4([4]byte(server)), 8080)
	send := func(fromClient bool, flags string, seq, ack uint32, payload string) {
		src, dst := sv, c
		if fromClient {
			src, dst = c, sv
		}
		flow, tcp := packet(t, src, dst, flags, seq, ack, payload)
		now = now.Add(time.Millisecond)
		asm.AssembleWithContext(flow, tcp, &captureContext{gopacket.CaptureInfo{Timestamp: now}})
	}
	connection := func(isn uint32, request string) {
		c, s := isn, uint32(5000)
		send(true, "S", c, 0, "")
		send(false, "SA", s, c+1, "")
		send(true, "A", c+1, s+1, "")
		send(true, "A", c+1, s+1, request)
		send(false, "A", s+1, c+1+uint32(len(request)), "")
		send(false, "FA", s+1, c+1+uint32(len(request)), "")
		send(true, "FA", c+1+uint32(len(request)), s+2, "")
		send(false, "A", s+2, c+2+uint32(len(request)), "") // after both FINs: the stray
	}
	connection(1000, "GET /first HTTP/1.1\r\n\r\n")
	connection(900000, "GET /second HTTP/1.1\r\n\r\n")
	asm.FlushAll()
	time.Sleep(100 * time.Millisecond)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(got)
	if len(got) != 2 || got[0] != "GET /first HTTP/1.1\r\n\r\n" || got[1] != "GET /second HTTP/1.1\r\n\r\n" {
		t.Errorf("mirrored %q, want both connections' requests", got)
	}
}

// packet is a TCP segment from src to dst, serialized and decoded as captured packets are
// (the flows come from the bytes). flags: S(YN), A(CK), F(IN).
func packet(t testing.TB, src, dst netip.AddrPort, flags string, seq, ack uint32, payload string) (gopacket.Flow, *layers.TCP) {
	t.Helper()
	ip := &layers.IPv4{SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice(), Protocol: layers.IPProtocolTCP, Version: 4, IHL: 5, TTL: 64}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: seq, Ack: ack, Window: 65535}
	for _, c := range flags {
		switch c {
		case 'S':
			tcp.SYN = true
		case 'A':
			tcp.ACK = true
		case 'F':
			tcp.FIN = true
		}
	}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	var dip layers.IPv4
	var dtcp layers.TCP
	var decoded []gopacket.LayerType
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeIPv4, &dip, &dtcp)
	parser.IgnoreUnsupported = true // the payload after TCP
	if err := parser.DecodeLayers(buf.Bytes(), &decoded); err != nil {
		t.Fatal(err)
	}
	return dip.NetworkFlow(), &dtcp
}
