package mirror

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/nstest"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
)

// TestMirrorDeliversWhileConnectionLives: each request of a keep-alive connection reaches
// the handler while the connection is still open, not only when it closes.
func TestMirrorDeliversWhileConnectionLives(t *testing.T) {
	tg := nstest.Start(t, nstest.Options{})
	link := nstest.Connect(t, tg)
	ns, err := netns.OfPID("/proc", tg.PID)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	seen := make(chan string, 10)
	m, err := Start(ns, []uint16{nstest.HTTPPort}, func(c *Conn) {
		br := bufio.NewReader(c.Data)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			seen <- req.URL.Path
		}
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
	tg := nstest.Start(t, nstest.Options{})
	link := nstest.Connect(t, tg)
	ns, err := netns.OfPID("/proc", tg.PID)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	seen := make(chan string, 10)
	release := make(chan struct{})
	var calls atomic.Int32
	m, err := Start(ns, []uint16{nstest.HTTPPort}, func(c *Conn) {
		if calls.Add(1) == 1 {
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
	nstest.MustGet(t, link.Client, addr, "", "/unread")
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
	if _, err := b.Read(buf); err != ErrFellBehind {
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

// TestMirrorManyShortConnections: every request of many short connections (one request
// each, as HTTP clients without keep-alive make them) is mirrored.
func TestMirrorManyShortConnections(t *testing.T) {
	tg := nstest.Start(t, nstest.Options{})
	link := nstest.Connect(t, tg)
	ns, err := netns.OfPID("/proc", tg.PID)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var mu sync.Mutex
	seen := map[string]bool{}
	m, err := Start(ns, []uint16{nstest.HTTPPort}, func(c *Conn) {
		br := bufio.NewReader(c.Data)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			mu.Lock()
			seen[req.URL.Path] = true
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	time.Sleep(100 * time.Millisecond)
	// 15 s of them: longer than the capture's 10 s flush period.
	const n = 300
	addr := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)
	for i := range n {
		nstest.MustGet(t, link.Client, addr, "", fmt.Sprintf("/short-%d", i))
		time.Sleep(50 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	var missing []string
	for {
		mu.Lock()
		missing = missing[:0]
		for i := range n {
			if p := fmt.Sprintf("/short-%d", i); !seen[p] {
				missing = append(missing, p)
			}
		}
		mu.Unlock()
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d requests not mirrored: %v", len(missing), n, missing[:min(len(missing), 20)])
	}
}
