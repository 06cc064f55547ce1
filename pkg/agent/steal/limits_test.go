package steal

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/httpfilter"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// serveLoopback serves stolen connections on a loopback listener with a filter taking
// every request, answered "local".
func serveLoopback(t *testing.T) string {
	t.Helper()
	f, err := httpfilter.Compile(&mirrordv1alpha1.HTTPFilter{Path: "^/"})
	if err != nil {
		t.Fatal(err)
	}
	session := func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, ContentLength: 5, Body: io.NopCloser(strings.NewReader("local"))}, nil
	}
	return serveLoopbackWith(t, f, session, func(context.Context) (net.Conn, error) { return nil, io.EOF })
}

// serveLoopbackWith serves stolen connections on a loopback listener: what f matches to
// session, the rest to what dial reaches.
func serveLoopbackWith(t *testing.T, f *httpfilter.Filter, session RoundTripFunc, dial func(context.Context) (net.Conn, error)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _ = Serve(t.Context(), c, f, session, dial) }()
		}
	}()
	return l.Addr().String()
}

// closedWithin reports whether the server closes c within d (reading and discarding).
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return err == nil // EOF: closed by the server; a timeout is an error
}

// TestStealLimits: what any client of a stolen port sends is bounded in size and time.
func TestStealLimits(t *testing.T) {
	idle, header := IdleTimeout, HeaderTimeout
	IdleTimeout, HeaderTimeout = 300*time.Millisecond, 300*time.Millisecond
	t.Cleanup(func() { IdleTimeout, HeaderTimeout = idle, header })
	addr := serveLoopback(t)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("a request within the limits is routed", func(t *testing.T) {
		c := dial()
		_, _ = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\nX-Ok: "+strings.Repeat("a", 100<<10)+"\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("response: %v %v", resp, err)
		}
	})
	t.Run("headers over MaxHeaderBytes are answered 431 and the connection closed", func(t *testing.T) {
		hits := protocol.LimitHits(protocol.LimitStealHeaderBytes)
		c := dial()
		go func() {
			_, _ = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: ")
			big := strings.Repeat("a", 64<<10)
			for range 64 { // 4 MiB, more than the limit, in one header line
				if _, err := io.WriteString(c, big); err != nil {
					return
				}
			}
		}()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("response: %v %v, want 431", resp, err)
		}
		if got := hitsAfter(protocol.LimitStealHeaderBytes, hits); got != 1 {
			t.Errorf("%s hits = %d, want 1", protocol.LimitStealHeaderBytes, got)
		}
	})
	t.Run("a client that says nothing is closed after IdleTimeout", func(t *testing.T) {
		if !closedWithin(dial(), 3*time.Second) {
			t.Fatal("a silent connection was kept")
		}
	})
	t.Run("headers slower than HeaderTimeout close the connection", func(t *testing.T) {
		hits := protocol.LimitHits(protocol.LimitStealHeaderTime)
		c := dial()
		_, _ = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\n") // and never the blank line
		if !closedWithin(c, 3*time.Second) {
			t.Fatal("a connection stuck in its headers was kept")
		}
		if got := hitsAfter(protocol.LimitStealHeaderTime, hits); got != 1 {
			t.Errorf("%s hits = %d, want 1", protocol.LimitStealHeaderTime, got)
		}
	})
	t.Run("a keep-alive connection idle after a request is closed after IdleTimeout", func(t *testing.T) {
		c := dial()
		_, _ = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("response: %v %v", resp, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("after the idle time: %v, want the server's close", err)
		}
	})
}

// hitsAfter is how many times limit was hit since it stood at before, once the server has
// closed the connection (which it counts just after closing it).
func hitsAfter(limit protocol.LimitName, before int64) int64 {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if protocol.LimitHits(limit) > before {
			break
		}
	}
	return protocol.LimitHits(limit) - before
}

// TestStealBodyFilter: a body filter reads the body to route a request, and whoever gets the
// request gets all of it: the session when the JSON matches, the target otherwise, and the
// target when the body is longer than the filter reads. A body slower than BodyTimeout is
// answered 408.
func TestStealBodyFilter(t *testing.T) {
	bodyTimeout := BodyTimeout
	BodyTimeout = 300 * time.Millisecond
	t.Cleanup(func() { BodyTimeout = bodyTimeout })
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "target %d %x", len(b), sha256.Sum256(b))
	}))
	t.Cleanup(target.Close)
	f, err := httpfilter.Compile(&mirrordv1alpha1.HTTPFilter{Body: &mirrordv1alpha1.JSONBodyFilter{Query: "$.user", Matches: "^alice$"}})
	if err != nil {
		t.Fatal(err)
	}
	session := func(r *http.Request) (*http.Response, error) {
		b, _ := io.ReadAll(r.Body)
		msg := fmt.Sprintf("local %d %x", len(b), sha256.Sum256(b))
		return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, ContentLength: int64(len(msg)), Body: io.NopCloser(strings.NewReader(msg))}, nil
	}
	addr := serveLoopbackWith(t, f, session, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", target.Listener.Addr().String())
	})
	post := func(t *testing.T, body string, chunked bool) string {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+addr+"/users", strings.NewReader(body))
		if chunked {
			req.ContentLength = -1
			req.Body = io.NopCloser(strings.NewReader(body))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	want := func(who, body string) string {
		return fmt.Sprintf("%s %d %x", who, len(body), sha256.Sum256([]byte(body)))
	}

	alice, bob := `{"user": "alice", "n": 1}`, `{"user": "bob"}`
	long := `{"user": "alice", "pad": "` + strings.Repeat("p", httpfilter.MaxBody) + `"}`
	for name, tc := range map[string]struct {
		body    string
		chunked bool
		want    string
	}{
		"matching JSON to the session":      {body: alice, want: want("local", alice)},
		"other JSON to the target":          {body: bob, want: want("target", bob)},
		"chunked matching JSON":             {body: alice, chunked: true, want: want("local", alice)},
		"a body over MaxBody to the target": {body: long, want: want("target", long)},
	} {
		t.Run(name, func(t *testing.T) {
			hits := protocol.LimitHits(protocol.LimitStealBodyBytes)
			if got := post(t, tc.body, tc.chunked); got != tc.want {
				t.Errorf("answer %.80q, want %.80q", got, tc.want)
			}
			if over, got := len(tc.body) > httpfilter.MaxBody, protocol.LimitHits(protocol.LimitStealBodyBytes)-hits; (got == 1) != over {
				t.Errorf("%s hits = %d", protocol.LimitStealBodyBytes, got)
			}
		})
	}
	t.Run("a body slower than BodyTimeout is answered 408", func(t *testing.T) {
		hits := protocol.LimitHits(protocol.LimitStealBodyTime)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "POST /users HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{\"user\":")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("response: %v %v, want 408", resp, err)
		}
		if got := protocol.LimitHits(protocol.LimitStealBodyTime) - hits; got != 1 {
			t.Errorf("%s hits = %d, want 1", protocol.LimitStealBodyTime, got)
		}
	})
}
