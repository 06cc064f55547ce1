package incoming

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// loopback dials the command on this machine's loopback (as proxy mode does).
type loopback struct{}

func (loopback) DialIn(ctx context.Context, _, dst netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", dst.String())
}

// TestDeliveryWaitsForTheCommandToListen: a mirrored request that arrives before the
// command listens (it has just started) reaches it once it does.
func TestDeliveryWaitsForTheCommandToListen(t *testing.T) {
	// A free port, closed again: the command will listen on it a moment later.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(probe.Addr().(*net.TCPAddr).Port)
	probe.Close()

	d := &Deliverer{Dialer: loopback{}, Target: netip.MustParseAddr("127.0.0.1"), PortMapping: map[uint16]uint16{}}
	session, st := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.deliver(t.Context(), protocol.Incoming{Kind: protocol.IncomingMirror, Client: "10.0.0.9:5000", Server: fmt.Sprintf("10.0.0.1:%d", port)}, st)
	}()
	go func() {
		fmt.Fprintf(session, "GET /early HTTP/1.1\r\nHost: api\r\n\r\n")
		session.Close()
	}()

	time.Sleep(500 * time.Millisecond) // the command starts listening only now
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		got <- req.URL.Path
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	}()
	select {
	case p := <-got:
		if p != "/early" {
			t.Errorf("the command got %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the request sent before the command listened never reached it (undelivered: %d)", d.Undelivered.Load())
	}
	<-done
}
