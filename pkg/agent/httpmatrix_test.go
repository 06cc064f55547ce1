package agent

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/nstest"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/internal/httpmatrix"
	localincoming "github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/incoming"
)

// matrixPort is the port the matrix's target listens on in its pod.
const matrixPort = 8090

// loopback dials the session's local server, wherever a delivery is addressed.
type loopback struct{ addr string }

func (l loopback) DialIn(ctx context.Context, _, _ netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", l.addr)
}

// TestHTTPMatrix runs every HTTP exchange of httpmatrix.Cases through a filtered steal: the
// requests the filter matches through the agent, the session's stream and the local
// delivery to a local server, the others through the agent to the target, and each must
// mean what it means without a session, with no added stall.
func TestHTTPMatrix(t *testing.T) {
	c, tg := serving(t, Config{}, incoming(mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeSteal,
		Ports: []int32{matrixPort}, HTTPFilter: &mirrordv1alpha1.HTTPFilter{Header: "^X-User: alice$"}}), nstest.Options{})
	ns, err := netns.OfPID("/proc", tg.PID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	tl, err := ns.Listen(t.Context(), "tcp", fmt.Sprintf(":%d", matrixPort), nil)
	if err != nil {
		t.Fatal(err)
	}
	target := &http.Server{Handler: httpmatrix.Handler("target")}
	go func() { _ = target.Serve(tl) }()
	t.Cleanup(func() { target.Close() })
	ll, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	local := &http.Server{Handler: httpmatrix.Handler("local")}
	go func() { _ = local.Serve(ll) }()
	t.Cleanup(func() { local.Close() })

	sub, err := c.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	d := &localincoming.Deliverer{Dialer: loopback{ll.Addr().String()}, Target: netip.MustParseAddr("127.0.0.1")}
	go func() { _ = d.Serve(t.Context(), sub) }()

	link := nstest.Connect(t, tg)
	addr := fmt.Sprintf("%s:%d", link.TargetIP, matrixPort)
	for _, tc := range httpmatrix.Cases {
		for _, side := range []struct{ user, who string }{{"alice", "local"}, {"bob", "target"}} {
			t.Run(tc.Name+"/"+side.who, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				conn, err := link.Client.Dial(ctx, "tcp", addr, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				began := time.Now()
				tc.Run(t, conn, bufio.NewReader(conn), side.user, side.who)
				// The slow client takes 500 ms of its own; anything else is quick. A second
				// is net/http's wait for a 100 Continue that never came.
				if took := time.Since(began); took > 900*time.Millisecond {
					t.Errorf("took %s: a stall", took)
				}
			})
		}
	}
}

// TestHTTPMatrixMirror runs the matrix on a mirrored port: every client is answered by the
// target as without a session, and the local server gets a copy of each exchange's request.
func TestHTTPMatrixMirror(t *testing.T) {
	c, tg := serving(t, Config{}, incoming(mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeMirror,
		Ports: []int32{matrixPort}}), nstest.Options{})
	ns, err := netns.OfPID("/proc", tg.PID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	tl, err := ns.Listen(t.Context(), "tcp", fmt.Sprintf(":%d", matrixPort), nil)
	if err != nil {
		t.Fatal(err)
	}
	target := &http.Server{Handler: httpmatrix.Handler("target")}
	go func() { _ = target.Serve(tl) }()
	t.Cleanup(func() { target.Close() })
	seen := make(chan string, 64)
	ll, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	localHandler := httpmatrix.Handler("local")
	local := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-User") + " " + r.Method + " " + r.URL.Path
		localHandler.ServeHTTP(w, r)
	})}
	go func() { _ = local.Serve(ll) }()
	t.Cleanup(func() { local.Close() })

	link := nstest.Connect(t, tg) // before subscribing: the capture needs the pod's interface
	sub, err := c.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	d := &localincoming.Deliverer{Dialer: loopback{ll.Addr().String()}, Target: netip.MustParseAddr("127.0.0.1")}
	go func() { _ = d.Serve(t.Context(), sub) }()

	addr := fmt.Sprintf("%s:%d", link.TargetIP, matrixPort)
	for i, tc := range httpmatrix.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			conn, err := link.Client.Dial(ctx, "tcp", addr, nil)
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			user := fmt.Sprintf("case-%d", i) // tells this case's copies from the others'
			tc.Run(t, conn, bufio.NewReader(conn), user, "target")
			conn.Close() // a mirrored connection reaches the session as it ends
			if tc.Bodyless {
				return
			}
			for deadline := time.After(5 * time.Second); ; {
				select {
				case got := <-seen:
					if strings.HasPrefix(got, user+" ") {
						t.Logf("the local server got a copy: %s", got)
						return
					}
				case <-deadline:
					t.Fatal("the local server got no copy of the request")
				}
			}
		})
	}
}

// TestStealToASingleThreadedServer: a client's connection into the command ends with the
// client's, so a server that serves one connection at a time (Python's http.server) serves
// the next client.
func TestStealToASingleThreadedServer(t *testing.T) {
	c, tg := serving(t, Config{}, incoming(mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeSteal,
		Ports: []int32{matrixPort}, HTTPFilter: &mirrordv1alpha1.HTTPFilter{Header: "^X-User: alice$"}}), nstest.Options{})
	ns, err := netns.OfPID("/proc", tg.PID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	tl, err := ns.Listen(t.Context(), "tcp", fmt.Sprintf(":%d", matrixPort), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tl.Close() })
	ll, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ll.Close() })
	go func() { // one connection at a time, each served until it closes
		for n := 1; ; n++ {
			conn, err := ll.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(conn)
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					break
				}
				body := fmt.Sprintf("connection %d %s", n, req.URL.Path)
				fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			}
			conn.Close()
		}
	}()
	sub, err := c.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	d := &localincoming.Deliverer{Dialer: loopback{ll.Addr().String()}, Target: netip.MustParseAddr("127.0.0.1")}
	go func() { _ = d.Serve(t.Context(), sub) }()

	link := nstest.Connect(t, tg)
	addr := fmt.Sprintf("%s:%d", link.TargetIP, matrixPort)
	for i, path := range []string{"/first", "/second"} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		conn, err := link.Client.Dial(ctx, "tcp", addr, nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: api\r\nX-User: alice\r\n\r\n", path)
		_, _, body := httpmatrix.ReadAnswer(t, bufio.NewReader(conn), "GET")
		httpmatrix.Want(t, "answer", body, fmt.Sprintf("connection %d %s", i+1, path))
		conn.Close() // a keep-alive client leaves
	}
}
