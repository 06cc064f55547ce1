package mirror

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
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
