package steal

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/httpfilter"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/bench/report"
)

// requestBudget is what one request on a keep-alive connection may allocate in this test,
// the client's and the target's share included (5 to 9 KiB in all, measured). Everything allocated per
// request is zeroed and later collected: on a small node that CPU is the round trip's time,
// and a buffer made per request (net/http's reverse proxy makes a 32 KiB one unless given a
// pool) cost more than the rest of the agent's work.
const requestBudget = 16 << 10

// TestRequestAllocations keeps the memory a stolen request and a passed-on one cost under
// requestBudget.
func TestRequestAllocations(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "target") }))
	defer target.Close()
	filter, err := httpfilter.Compile(&mirrordv1alpha1.HTTPFilter{Header: "^X-User: alice$"})
	if err != nil {
		t.Fatal(err)
	}
	const answer = "session"
	session := RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{},
			ContentLength: int64(len(answer)), Body: io.NopCloser(strings.NewReader(answer))}, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = Serve(t.Context(), c, filter, session, func(ctx context.Context) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "tcp", target.Listener.Addr().String())
				})
			}()
		}
	}()
	for _, user := range []string{"alice", "bob"} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		request := []byte("GET /x HTTP/1.1\r\nHost: api\r\nX-User: " + user + "\r\n\r\n")
		if _, err := report.KeepAliveRoundTrips(c, request, 50); err != nil { // warm: connections, pools
			t.Fatal(err)
		}
		const n = 500
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := report.KeepAliveRoundTrips(c, request, n); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		c.Close()
		perRequest := (after.TotalAlloc - before.TotalAlloc) / n
		t.Logf("%s: %d bytes allocated per request", user, perRequest)
		if perRequest > requestBudget {
			t.Errorf("a request of %s allocates %d bytes, over the budget of %d", user, perRequest, requestBudget)
		}
	}
}
