package relayserver

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// A relay holds at most max connections that have not been upgraded; the next is closed as it
// arrives, and an upgraded (hijacked) or closed one frees its place.
func TestLimitPending(t *testing.T) {
	hijacked := make(chan net.Conn, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		hijacked <- c
	}))
	srv.Config.ConnState = limitPending(2)
	srv.Start()
	defer srv.Close()

	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedAtOnce says whether the server closed c without a word.
	closedAtOnce := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		return err != nil && !isTimeout(err)
	}
	hits := protocol.LimitHits(protocol.LimitPendingConns)
	silent1, silent2 := dial(), dial()
	if closedAtOnce(silent1) || closedAtOnce(silent2) {
		t.Fatal("a connection within the limit was closed")
	}
	if !closedAtOnce(dial()) {
		t.Fatal("a third silent connection was kept, want it closed at once")
	}
	if got := protocol.LimitHits(protocol.LimitPendingConns) - hits; got != 1 {
		t.Fatalf("limit hits = %d, want 1", got)
	}

	// Upgrading one frees its place.
	if _, err := silent1.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	(<-hijacked).Close()
	waitFor(t, func() bool { return !closedAtOnce(dial()) })
	// Closing one frees its place too.
	silent2.Close()
	waitFor(t, func() bool { return !closedAtOnce(dial()) })
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if ok() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}
