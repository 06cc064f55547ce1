package mirror

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/nstest"
)

// TestHubSharesOneCapture: sessions share one capture, each getting its own copy of the
// connections to its ports; a new session's port joins the running capture, and one
// session leaving takes nothing from the others.
func TestHubSharesOneCapture(t *testing.T) {
	_, link, ns := targetWithClient(t)
	hub := NewHub(ns)
	defer hub.Close()
	type seen struct{ who, what string }
	got := make(chan seen, 20)
	subscribe := func(who string, ports ...uint16) func() {
		t.Helper()
		unsub, err := hub.Subscribe(ports, func(c *Conn) {
			if c.Server.Port() != nstest.HTTPPort {
				got <- seen{who, fmt.Sprintf("port %d", c.Server.Port())}
				_, _ = io.Copy(io.Discard, c.Data)
				return
			}
			eachRequest(c.Data, func(path string) { got <- seen{who, path} })
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		return unsub
	}
	expect := func(want ...seen) {
		t.Helper()
		var have []seen
		deadline := time.After(3 * time.Second)
		for len(have) < len(want) {
			select {
			case s := <-got:
				have = append(have, s)
			case <-deadline:
				t.Fatalf("saw %v, want %v", have, want)
			}
		}
		select {
		case s := <-got:
			t.Fatalf("saw %v and also %v, want only %v", have, s, want)
		case <-time.After(200 * time.Millisecond):
		}
		for _, w := range want {
			found := false
			for _, h := range have {
				found = found || h == w
			}
			if !found {
				t.Fatalf("saw %v, want %v", have, want)
			}
		}
	}
	addr := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)

	leaveA := subscribe("a", nstest.HTTPPort)
	leaveB := subscribe("b", nstest.HTTPPort)
	nstest.MustGet(t, link.Client, addr, "", "/both")
	expect(seen{"a", "/both"}, seen{"b", "/both"})

	// c's port widens the running capture.
	ln, err := ns.Listen(t.Context(), "tcp", ":9999", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	leaveC := subscribe("c", 9999)
	c, err := link.Client.Dial(t.Context(), "tcp", fmt.Sprintf("%s:9999", link.TargetIP), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("hello"))
	c.Close()
	expect(seen{"c", "port 9999"})

	leaveB()
	nstest.MustGet(t, link.Client, addr, "", "/after-b")
	expect(seen{"a", "/after-b"})

	leaveA()
	leaveC()
	hub.mu.Lock()
	capturing := hub.m != nil
	hub.mu.Unlock()
	if capturing {
		t.Error("the capture runs on without subscribers")
	}
}
