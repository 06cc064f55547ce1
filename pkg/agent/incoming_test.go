package agent

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/nstest"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

func incoming(in mirrordv1alpha1.IncomingFeature) mirrordv1alpha1.Features {
	return mirrordv1alpha1.Features{Network: mirrordv1alpha1.NetworkFeature{Incoming: in}}
}

func TestIncomingMirror(t *testing.T) {
	c, tg := serving(t, Config{}, incoming(mirrordv1alpha1.IncomingFeature{}), nstest.Options{})
	link := nstest.Connect(t, tg)
	sub, err := c.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := make(chan string, 1)
	go func() {
		in, st, err := sub.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(st)
		got <- fmt.Sprintf("%s %s %s", in.Kind, strings.Split(in.Server, ":")[1], b)
	}()
	addr := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)
	if body := nstest.MustGet(t, link.Client, addr, "anyone", "/mirrored"); body != tg.Token+" GET /mirrored" {
		t.Errorf("the target answered %q while mirrored", body)
	}
	select {
	case g := <-got:
		if !strings.HasPrefix(g, "mirror 8080 GET /mirrored HTTP/1.1\r\n") {
			t.Errorf("mirrored: %q", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing mirrored")
	}
}

// stealingAlice serves a session stealing the requests with "X-User: alice" and subscribes
// to it; the subscription ends with the test.
func stealingAlice(t *testing.T) (*nstest.Target, *nstest.Link, *protocol.Subscription) {
	t.Helper()
	c, tg := serving(t, Config{}, incoming(mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeSteal,
		HTTPFilter: &mirrordv1alpha1.HTTPFilter{Header: "^X-User: alice$"}}), nstest.Options{})
	link := nstest.Connect(t, tg)
	sub, err := c.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	return tg, link, sub
}

func TestIncomingStealFiltered(t *testing.T) {
	tg, link, sub := stealingAlice(t)
	go answerLocally(sub, "local")
	addr := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)
	if got := nstest.MustGet(t, link.Client, addr, "alice", "/mine"); got != "local /mine" {
		t.Errorf("alice's request: %q", got)
	}
	if got := nstest.MustGet(t, link.Client, addr, "bob", "/theirs"); got != tg.Token+" GET /theirs" {
		t.Errorf("bob's request: %q", got)
	}
	// Ending the subscription gives the port back.
	sub.Close()
	waitAnsweredByTarget(t, tg, link, addr, "alice", "the port is still stolen after the subscription ended")
}

// waitAnsweredByTarget waits up to 5 s until user's requests to addr are answered by the
// target itself (a steal has ended), failing with why otherwise.
func waitAnsweredByTarget(t *testing.T, tg *nstest.Target, link *nstest.Link, addr, user, why string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for nstest.MustGet(t, link.Client, addr, user, "/after") != tg.Token+" GET /after" {
		if time.Now().After(deadline) {
			t.Fatal(why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// answerLocally answers each request delivered to sub with "NAME PATH", as a local server
// would; a delivery that is not a filtered request is closed unanswered.
func answerLocally(sub *protocol.Subscription, name string) {
	for {
		in, st, err := sub.Accept()
		if err != nil {
			return
		}
		go func(st net.Conn) {
			defer st.Close()
			if in.Kind != protocol.IncomingRequest {
				return
			}
			br := bufio.NewReader(st)
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				body := name + " " + req.URL.Path
				fmt.Fprintf(st, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			}
		}(st)
	}
}

// TestIncomingSessionsShareAnAgent: two sessions on one agent steal by their own header
// filters; each gets only its own requests, the rest reach the target, and one session
// ending leaves the other's steal in place.
func TestIncomingSessionsShareAnAgent(t *testing.T) {
	addr, tg := startAgent(t, Config{}, nstest.Options{})
	link := nstest.Connect(t, tg)
	subscribe := func(name, user string) *protocol.Subscription {
		c := connect(t, addr, "ns/"+name, incoming(mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeSteal,
			HTTPFilter: &mirrordv1alpha1.HTTPFilter{Header: "^X-User: " + user + "$"}}))
		sub, err := c.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		go answerLocally(sub, name)
		t.Cleanup(func() { c.Close() })
		return sub
	}
	subscribe("alice-session", "alice")
	bob := subscribe("bob-session", "bob")
	target := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)
	for user, want := range map[string]string{"alice": "alice-session /x", "bob": "bob-session /x", "carol": tg.Token + " GET /x"} {
		if got := nstest.MustGet(t, link.Client, target, user, "/x"); got != want {
			t.Errorf("%s's request: %q, want %q", user, got, want)
		}
	}
	bob.Close()
	waitAnsweredByTarget(t, tg, link, target, "bob", "bob's requests are still stolen after his session ended")
	if got := nstest.MustGet(t, link.Client, target, "alice", "/after"); got != "alice-session /after" {
		t.Errorf("alice's request after bob left: %q", got)
	}
}

// A keep-alive client's stolen requests share one stream to the session, request after
// response; a request the filter does not match still reaches the target in between.
func TestIncomingStealKeepAliveSharesAStream(t *testing.T) {
	tg, link, sub := stealingAlice(t)
	var streams atomic.Int32
	go func() {
		for {
			_, st, err := sub.Accept()
			if err != nil {
				return
			}
			streams.Add(1)
			go func(st net.Conn) {
				defer st.Close()
				br := bufio.NewReader(st)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					body := "local " + req.URL.Path
					fmt.Fprintf(st, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				}
			}(st)
		}
	}()
	addr := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)
	conn, err := link.Client.Dial(t.Context(), "tcp", addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for i, tc := range []struct{ user, path, want string }{
		{"alice", "/1", "local /1"}, {"bob", "/2", tg.Token + " GET /2"}, {"alice", "/3", "local /3"}, {"alice", "/4", "local /4"},
	} {
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: t\r\nX-User: %s\r\n\r\n", tc.path, tc.user)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != tc.want {
			t.Errorf("request %d (%s %s): %q, want %q", i, tc.user, tc.path, b, tc.want)
		}
	}
	if n := streams.Load(); n != 1 {
		t.Errorf("three stolen requests of one connection took %d streams, want 1", n)
	}
}

func TestIncomingRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		in   mirrordv1alpha1.IncomingFeature
		want string
	}{
		"off":         {mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeOff}, "incoming traffic is off"},
		"all ignored": {mirrordv1alpha1.IncomingFeature{IgnorePorts: []int32{8080, 9090, 53}}, "listens on no TCP port"},
	} {
		t.Run(name, func(t *testing.T) {
			c, _ := serving(t, Config{ProbePorts: []int32{8080}}, incoming(tc.in), nstest.Options{})
			if _, err := c.Subscribe(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("subscribe: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestExceptNode(t *testing.T) {
	for name, tc := range map[string]struct {
		port        uint16
		stealProbes bool
		want        bool
	}{
		"a probed port: the node's connections go on to the target": {8080, false, true},
		"a probed port, probes stolen too":                          {8080, true, false},
		"a port no probe uses":                                      {9090, false, false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := exceptNode(tc.port, []int32{8080, 8443}, tc.stealProbes); got != tc.want {
				t.Errorf("exceptNode = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestNetnsAddrs: the addresses of a process's network namespace, as it lists them itself.
func TestNetnsAddrs(t *testing.T) {
	got, err := netnsAddrs("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var want []netip.Addr
	for _, ia := range ifaddrs {
		if a, ok := netip.AddrFromSlice(ia.(*net.IPNet).IP); ok && !a.Unmap().IsLoopback() {
			want = append(want, a.Unmap())
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("netnsAddrs = %v, want this namespace's %v", got, want)
	}
}
