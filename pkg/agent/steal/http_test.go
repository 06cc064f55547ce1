package steal

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/nstest"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/httpfilter"
)

// TestStealHTTPFilter steals a port with a header filter: on one keep-alive connection, and
// with pipelined requests, matching requests are answered by the session and the rest by
// the target, in order.
func TestStealHTTPFilter(t *testing.T) {
	tg, link, ns := targetWithClient(t)
	filter, err := httpfilter.Compile(&mirrordv1alpha1.HTTPFilter{Header: "^X-User: alice$"})
	if err != nil {
		t.Fatal(err)
	}
	session := func(r *http.Request) (*http.Response, error) {
		body := requestBody(r)
		msg := fmt.Sprintf("local %s %s %d", r.Method, r.URL.Path, len(body))
		return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, ContentLength: int64(len(msg)), Body: io.NopCloser(strings.NewReader(msg))}, nil
	}
	var s *Stealer
	s, err = Start(t.Context(), ns, NFTables, "mirrord-http", func(c net.Conn, orig netip.AddrPort) {
		_ = Serve(t.Context(), c, filter, RoundTripFunc(session), func(ctx context.Context) (net.Conn, error) { return s.DialOriginal(ctx, orig, ClientOf(c)) })
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Steal(nstest.HTTPPort, true); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := link.Client.Dial(ctx, "tcp", fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	type exchange struct{ req, want string }
	alice := func(method, path, body string) string {
		return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: api\r\nX-User: alice\r\nContent-Length: %d\r\n\r\n%s", method, path, len(body), body)
	}
	other := func(method, path string) string {
		return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: api\r\nX-User: bob\r\n\r\n", method, path)
	}
	chunked := "POST /upload HTTP/1.1\r\nHost: api\r\nX-User: alice\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
	rounds := [][]exchange{
		// One request at a time on a keep-alive connection.
		{{alice("GET", "/a", ""), "local GET /a 0"}},
		{{other("GET", "/b"), tg.Token + " GET /b"}},
		{{alice("POST", "/c", "body!"), "local POST /c 5"}},
		{{chunked, "local POST /upload 11"}},
		// Pipelined: all written before any answer is read.
		{{other("GET", "/p1"), tg.Token + " GET /p1"}, {alice("GET", "/p2", ""), "local GET /p2 0"}, {other("DELETE", "/p3"), tg.Token + " DELETE /p3"}},
	}
	for _, round := range rounds {
		var buf bytes.Buffer
		for _, ex := range round {
			buf.WriteString(ex.req)
		}
		if _, err := c.Write(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		for _, ex := range round {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("answer to %q: %v", ex.req, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != ex.want {
				t.Errorf("answer to %q = %q, want %q", strings.SplitN(ex.req, "\r\n", 2)[0], b, ex.want)
			}
		}
	}
}

// scripted is a connection that reads in and then EOF, and takes every write.
type scripted struct {
	net.Conn
	in io.Reader
}

func (c *scripted) Read(p []byte) (int, error)       { return c.in.Read(p) }
func (c *scripted) Write(p []byte) (int, error)      { return len(p), nil }
func (c *scripted) Close() error                     { return nil }
func (c *scripted) SetDeadline(time.Time) error      { return nil }
func (c *scripted) SetReadDeadline(time.Time) error  { return nil }
func (c *scripted) SetWriteDeadline(time.Time) error { return nil }
func (c *scripted) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scripted) RemoteAddr() net.Addr             { return &net.TCPAddr{} }

// FuzzStealServer: whatever any client of the target sends on a stolen, filtered port
// (HTTP/1 or h2c), the steal server neither crashes nor hangs once the client is done, with
// matched requests going to the session and the rest to the original.
func FuzzStealServer(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nX-User: alice\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
	f.Add([]byte(h2Preface + "\x00\x00\x00\x04\x00\x00\x00\x00\x00"))
	filter, err := httpfilter.Compile(&mirrordv1alpha1.HTTPFilter{Header: "^X-User: alice$"})
	if err != nil {
		f.Fatal(err)
	}
	session := func(r *http.Request) (*http.Response, error) {
		_ = requestBody(r)
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("local")), ContentLength: 5, ProtoMajor: 1, ProtoMinor: 1, Request: r}, nil
	}
	dial := func(context.Context) (net.Conn, error) {
		return &scripted{in: strings.NewReader(strings.Repeat("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 4))}, nil
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = Serve(t.Context(), &scripted{in: bytes.NewReader(in)}, filter, RoundTripFunc(session), dial)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("the steal server still serves %q after the client ended", in)
		}
	})
}

// requestBody reads an outgoing request's body, which is nil when it has none.
func requestBody(r *http.Request) []byte {
	if r.Body == nil {
		return nil
	}
	b, _ := io.ReadAll(r.Body)
	return b
}
