package steal

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/nstest"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/httpfilter"
)

// TestStealH2C steals a port with a header filter from an HTTP/2 (prior knowledge) client:
// concurrent streams on one connection go to the session or to the target by the filter, and
// HTTP/1 clients of the same port still work.
func TestStealH2C(t *testing.T) {
	tg, link, ns := targetWithClient(t)
	filter, err := httpfilter.Compile(&mirrordv1alpha1.HTTPFilter{Header: "^X-User: alice$"})
	if err != nil {
		t.Fatal(err)
	}
	session := func(r *http.Request) (*http.Response, error) {
		body := requestBody(r)
		msg := fmt.Sprintf("local %s %s %d %s", r.Method, r.URL.Path, len(body), r.Proto)
		return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{"X-From": {"local"}}, ContentLength: int64(len(msg)), Body: io.NopCloser(strings.NewReader(msg))}, nil
	}
	var s *Stealer
	s, err = Start(t.Context(), ns, NFTables, "h2c", func(c net.Conn, orig netip.AddrPort) {
		_ = Serve(context.Background(), c, filter, RoundTripFunc(session), func(ctx context.Context) (net.Conn, error) { return s.DialOriginal(ctx, orig, ClientOf(c)) })
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Steal(nstest.HTTPPort, true); err != nil {
		t.Fatal(err)
	}

	var dials atomic.Int32
	tr := &http.Transport{Protocols: new(http.Protocols), DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return link.Client.Dial(ctx, network, addr, nil)
	}}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := fmt.Sprintf("http://%s:%d", link.TargetIP, nstest.HTTPPort)

	// Warm up one connection, then many concurrent streams on it.
	do := func(user, method, path, body string) (string, error) {
		req, _ := http.NewRequestWithContext(t.Context(), method, url+path, strings.NewReader(body))
		req.Header.Set("X-User", user)
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.ProtoMajor != 2 {
			return "", fmt.Errorf("answered over %s", resp.Proto)
		}
		return string(b), nil
	}
	if _, err := do("bob", "GET", "/warm", ""); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			user, want := "bob", fmt.Sprintf("%s GET /s%d", tg.Token, i)
			method, body := "GET", ""
			if i%2 == 0 {
				user, method, body = "alice", "POST", strings.Repeat("x", i)
				want = fmt.Sprintf("local POST /s%d %d HTTP/2.0", i, i)
			}
			got, err := do(user, method, fmt.Sprintf("/s%d", i), body)
			if err != nil || got != want {
				t.Errorf("stream %d (%s): %q %v, want %q", i, user, got, err, want)
			}
		})
	}
	wg.Wait()
	if n := dials.Load(); n != 1 {
		t.Errorf("%d connections, want every stream on one", n)
	}
	// HTTP/1 on the same stolen port.
	if got := nstest.MustGet(t, link.Client, fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort), "alice", "/h1"); got != "local GET /h1 0 HTTP/1.1" {
		t.Errorf("HTTP/1 request: %q", got)
	}
}
