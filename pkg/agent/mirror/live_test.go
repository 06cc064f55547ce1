package mirror

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/nstest"
)

// TestMirrorDeliversWhileConnectionLives: each request of a keep-alive connection reaches
// the handler while the connection is still open, not only when it closes.
func TestMirrorDeliversWhileConnectionLives(t *testing.T) {
	_, link, ns := targetWithClient(t)
	seen := make(chan string, 10)
	m, err := Start(ns, []uint16{nstest.HTTPPort}, func(c *Conn) {
		eachRequest(c.Data, func(path string) { seen <- path })
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, err := link.Client.Dial(ctx, "tcp", fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range 3 {
		path := fmt.Sprintf("/r%d", i)
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		select {
		case p := <-seen:
			if !strings.HasSuffix(p, path) {
				t.Errorf("mirrored %s, want %s", p, path)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("request %s not mirrored while its connection is open", path)
		}
	}
}

// TestMirrorNeverWaitsForASlowHandler: a handler that does not read its connection holds up
// no other: the next connection is delivered while the first is still unread.
func TestMirrorNeverWaitsForASlowHandler(t *testing.T) {
	_, link, ns := targetWithClient(t)
	seen := make(chan string, 10)
	release := make(chan struct{})
	var unread netip.AddrPort
	known := make(chan struct{}) // unread is set
	m, err := Start(ns, []uint16{nstest.HTTPPort}, func(c *Conn) {
		<-known
		if c.Client == unread {
			<-release // a session that does not read
			_, _ = io.Copy(io.Discard, c.Data)
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(c.Data))
		if err == nil {
			seen <- req.URL.Path
		}
		_, _ = io.Copy(io.Discard, c.Data)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer close(release)
	time.Sleep(100 * time.Millisecond)
	addr := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := link.Client.Dial(ctx, "tcp", addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	unread = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	close(known)
	fmt.Fprintf(c, "GET /unread HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
		t.Fatal(err)
	}
	c.Close()
	nstest.MustGet(t, link.Client, addr, "", "/next")
	select {
	case p := <-seen:
		if p != "/next" {
			t.Errorf("mirrored %q, want /next", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second connection was not mirrored while the first was unread: the capture waited")
	}
}

func TestConnBufferDropsAReaderThatFallsBehind(t *testing.T) {
	b := newConnBuffer()
	b.write([]byte("hello "))
	b.write([]byte("world"))
	buf := make([]byte, 64)
	if n, err := b.Read(buf); err != nil || string(buf[:n]) != "hello world" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	b.write(make([]byte, connBufferLimit)) // one byte too many with the next
	b.write([]byte("x"))
	if _, err := b.Read(buf); !errors.Is(err, ErrFellBehind) {
		t.Fatalf("after falling behind: %v, want ErrFellBehind", err)
	}
	ok := newConnBuffer()
	ok.write([]byte("last"))
	ok.close()
	got, err := io.ReadAll(ok)
	if err != nil || string(got) != "last" {
		t.Errorf("after close: %q, %v", got, err)
	}
}

// eachRequest calls fn with the path of every HTTP request on a mirrored connection, until
// it ends.
func eachRequest(r io.Reader, fn func(path string)) {
	br := bufio.NewReader(r)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		fn(req.URL.Path)
	}
}
