package proxy

import (
	"bufio"
	"context"
	"net"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"testing"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/internal/httpmatrix"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/outgoing"
)

// toServer resolves every name to one address and connects to the matrix's server there.
type toServer struct{ addr string }

func (d toServer) LookupHost(context.Context, string, outgoing.ResolvConf) (netip.Addr, error) {
	return netip.MustParseAddr("10.96.0.7"), nil
}

func (d toServer) DialTCP(ctx context.Context, _ netip.AddrPort) (net.Conn, error) {
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", d.addr)
}

// viaProxy turns the origin-form requests a matrix case writes into a proxy's: absolute
// URLs, with the proxy's credential.
type viaProxy struct {
	net.Conn
	auth string
}

var requestLine = regexp.MustCompile(`(GET|POST|HEAD) (/\S*) HTTP/1\.1\r\n`)

func (c viaProxy) Write(p []byte) (int, error) {
	out := requestLine.ReplaceAll(p, []byte("$1 http://api$2 HTTP/1.1\r\nProxy-Authorization: Basic "+c.auth+"\r\n"))
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// TestHTTPMatrixProxy runs the HTTP matrix through proxy mode's HTTP proxy: every exchange
// means what it means without the proxy.
func TestHTTPMatrixProxy(t *testing.T) {
	target := httptest.NewServer(httpmatrix.Handler("target"))
	t.Cleanup(target.Close)
	s := &Server{Dialer: toServer{target.Listener.Addr().String()}}
	if err := s.Listen(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	for _, tc := range httpmatrix.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			c, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			began := time.Now()
			tc.Run(t, viaProxy{Conn: c, auth: basic(proxyUser, s.password)}, bufio.NewReader(c), "alice", "target")
			if took := time.Since(began); took > 900*time.Millisecond {
				t.Errorf("took %s: a stall", took)
			}
		})
	}
}
