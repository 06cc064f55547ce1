package mirror

import (
	"io"
	"net"
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
	f := &factory{ports: &ports, handler: func(c *Conn) {
		wg.Add(1)
		defer wg.Done()
		b, _ := io.ReadAll(c.Data)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	}}
	asm := reassembly.NewAssembler(reassembly.NewStreamPool(f))
	client, server := net.IPv4(10, 0, 0, 1).To4(), net.IPv4(10, 0, 0, 2).To4()
	now := time.Now()
	send := func(fromClient bool, flags string, seq, ack uint32, payload string) {
		ip := &layers.IPv4{SrcIP: server, DstIP: client, Protocol: layers.IPProtocolTCP}
		tcp := &layers.TCP{SrcPort: 8080, DstPort: 40000, Seq: seq, Ack: ack, Window: 65535}
		if fromClient {
			ip.SrcIP, ip.DstIP = client, server
			tcp.SrcPort, tcp.DstPort = 40000, 8080
		}
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
		// Serialized and decoded, as captured packets are (the flows come from the bytes).
		_ = tcp.SetNetworkLayerForChecksum(ip)
		ip.Version, ip.IHL, ip.TTL = 4, 5, 64
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
		now = now.Add(time.Millisecond)
		asm.AssembleWithContext(dip.NetworkFlow(), &dtcp, &captureContext{gopacket.CaptureInfo{Timestamp: now}})
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
