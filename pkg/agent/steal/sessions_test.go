package steal

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
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/httpfilter"
)

// startFiltered starts a session that steals the target's HTTP port for the requests whose
// X-User header is user and answers "<user>'s local <path> from <caller's IP>".
func startFiltered(t *testing.T, ns *netns.Handle, backend Backend, user string) *Stealer {
	t.Helper()
	filter, err := httpfilter.Compile(&mirrordv1alpha1.HTTPFilter{Header: "^X-User: " + user + "$"})
	if err != nil {
		t.Fatal(err)
	}
	var s *Stealer
	s, err = Start(t.Context(), ns, backend, user+"-session", func(c net.Conn, orig netip.AddrPort) {
		// Requests an earlier slot passed on arrive from the target's own address: the
		// session still learns the real caller (per request, as the agent reads it).
		session := func(r *http.Request) (*http.Response, error) {
			caller, _, _ := net.SplitHostPort(ClientOf(c))
			msg := fmt.Sprintf("%s's local %s from %s", user, r.URL.Path, caller)
			return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, ContentLength: int64(len(msg)), Body: io.NopCloser(strings.NewReader(msg))}, nil
		}
		_ = Serve(context.Background(), c, filter, RoundTripFunc(session), func(ctx context.Context) (net.Conn, error) { return s.DialOriginal(ctx, orig, ClientOf(c)) })
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Steal(nstest.HTTPPort, true); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSessionsShareAPort runs three filtered sessions on one port: on one keep-alive
// connection each request reaches the session whose filter it matches, the rest the target;
// when the first session ends, the others keep theirs.
func TestSessionsShareAPort(t *testing.T) { forEachBackend(t, testSessionsShareAPort) }

func testSessionsShareAPort(t *testing.T, backend Backend) {
	tg, link, ns := targetWithClient(t)
	alice := startFiltered(t, ns, backend, "alice")
	bob := startFiltered(t, ns, backend, "bob")
	carol := startFiltered(t, ns, backend, "carol")
	if alice.Slot() != 1 || bob.Slot() != 2 || carol.Slot() != 3 {
		t.Fatalf("slots %d %d %d, want 1 2 3", alice.Slot(), bob.Slot(), carol.Slot())
	}

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, err := link.Client.Dial(ctx, "tcp", fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	ask := func(user, path string) string {
		t.Helper()
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: api\r\nX-User: %s\r\n\r\n", path, user)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s %s: %v", user, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	for i := range 3 {
		for _, tc := range []struct{ user, want string }{
			{"carol", "carol's local /%d from " + link.ClientIP}, {"dave", tg.Token + " GET /%d"},
			{"alice", "alice's local /%d from " + link.ClientIP}, {"bob", "bob's local /%d from " + link.ClientIP},
		} {
			path := fmt.Sprintf("/%d", i)
			if got, want := ask(tc.user, path), fmt.Sprintf(tc.want, i); got != want {
				t.Errorf("%s's request: %q, want %q", tc.user, got, want)
			}
		}
	}

	// Alice ends: new connections go to bob and carol, and the target.
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ user, want string }{{"alice", tg.Token + " GET /after"}, {"bob", "bob's local /after from " + link.ClientIP}, {"carol", "carol's local /after from " + link.ClientIP}} {
		if got := nstest.MustGet(t, link.Client, fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort), tc.user, "/after"); got != tc.want {
			t.Errorf("after alice ended, %s's request: %q, want %q", tc.user, got, tc.want)
		}
	}
	// Her slot is free again.
	again := startFiltered(t, ns, backend, "erin")
	if again.Slot() != 1 {
		t.Errorf("a new session got slot %d, want the freed 1", again.Slot())
	}
}

// TestStealConflicts: a whole-port steal shares its port with no one, and says with whom
// it conflicts.
func TestStealConflicts(t *testing.T) { forEachBackend(t, testStealConflicts) }

func testStealConflicts(t *testing.T, backend Backend) {
	tg := nstest.Start(t, nstest.Options{})
	ns, err := netns.OfPID("/proc", tg.PID)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	start := func(name string) *Stealer {
		s, err := Start(t.Context(), ns, backend, name, func(c net.Conn, _ netip.AddrPort) { c.Close() })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	whole, other := start("alice-whole"), start("bob")
	if err := whole.Steal(nstest.HTTPPort, false); err != nil {
		t.Fatal(err)
	}
	var ce *ConflictError
	err = other.Steal(nstest.HTTPPort, false)
	if !errors.As(err, &ce) || !ce.Whole || !strings.Contains(err.Error(), "port 8080 is already stolen whole by session alice-whole") {
		t.Errorf("second whole-port steal: %v", err)
	}
	if err := other.Steal(nstest.HTTPPort, true); !errors.As(err, &ce) || !ce.Whole {
		t.Errorf("filtered steal of a wholly stolen port: %v", err)
	}
	if err := other.Steal(9999, false); err != nil {
		t.Errorf("another port: %v", err)
	}
	if err := whole.Release(nstest.HTTPPort); err != nil {
		t.Fatal(err)
	}
	if err := other.Steal(nstest.HTTPPort, true); err != nil {
		t.Errorf("filtered steal after the release: %v", err)
	}
	err = whole.Steal(nstest.HTTPPort, false)
	if !errors.As(err, &ce) || ce.Whole || !strings.Contains(err.Error(), "stolen with an HTTP filter by session bob") {
		t.Errorf("whole-port steal of a filtered port: %v", err)
	}
}

// TestStealEndAnswersItsConnections: a filtered session's end lets the connections it
// already took finish: a request sent on one after its rules went is passed on to the
// target and the answer reaches the client (the translation of the connection outlives
// the rules).
func TestStealEndAnswersItsConnections(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend Backend) {
		endWithAStolenConnection(t, backend, 100*time.Millisecond, nil) // the rules are gone, the connection is not
	})
}

// TestStealStartSparesAnEndingSession: a session starting on a target sweeps the conntrack
// entries dead agents left, but not those of a session still answering what it took after
// its listener closed.
func TestStealStartSparesAnEndingSession(t *testing.T) {
	endWithAStolenConnection(t, NFTables, backlogDrain+100*time.Millisecond, func(ns *netns.Handle) {
		startFiltered(t, ns, NFTables, "bob") // once the ending session's listener is closed
	})
}

// endWithAStolenConnection opens a connection a filtered session steals, ends the session,
// and after wait (and meanwhile, when set) sends a request on the connection that the
// filter does not match: the target's answer must come back.
func endWithAStolenConnection(t *testing.T, backend Backend, wait time.Duration, meanwhile func(*netns.Handle)) {
	tg, link, ns := targetWithClient(t)
	ending := startFiltered(t, ns, backend, "alice")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := link.Client.Dial(ctx, "tcp", fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	closed := make(chan error, 1)
	go func() { closed <- ending.Close() }()
	time.Sleep(wait)
	if meanwhile != nil {
		meanwhile(ns)
	}
	fmt.Fprintf(c, "GET /late HTTP/1.1\r\nHost: api\r\nX-User: carol\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the request sent as the session ended: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if want := tg.Token + " GET /late"; string(b) != want {
		t.Errorf("answered %q, want %q", b, want)
	}
	if err := <-closed; err != nil {
		t.Error(err)
	}
}
