package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/nstest"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	localincoming "github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/incoming"
)

// matrixPort is the port the matrix's target listens on in its pod.
const matrixPort = 8090

// matrixHandler serves every case of the HTTP matrix, each answer naming who gives it: the
// target in its pod, or the session's local server.
func matrixHandler(who string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %d %d", who, r.Method, len(b), len(r.Header.Get("X-Big")))
	})
	// Like nginx's `return 200`: the answer without reading the body.
	mux.HandleFunc("/at-once", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		fmt.Fprintf(w, "%s at once", who)
	})
	mux.HandleFunc("/hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		fmt.Fprintf(w, "%s hinted", who)
	})
	mux.HandleFunc("/upgrade", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(brw, "%s:%s", who, line)
			_ = brw.Flush()
		}
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		fmt.Fprintf(w, "%s %s", who, b)
		w.Header().Set("X-Sum", fmt.Sprintf("%s-%d-%s", who, len(b), r.Trailer.Get("X-Req-Sum")))
	})
	// An answer with neither Date nor Content-Type (net/http adds both unless told not to).
	mux.HandleFunc("/bare", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"], w.Header()["Content-Type"] = nil, nil
		fmt.Fprintf(w, "%s bare", who)
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		w.WriteHeader(code)
	})
	return mux
}

// matrixCase is one HTTP exchange on a fresh connection; it fails t unless the answer is
// who's and means what it meant without a session.
type matrixCase struct {
	name string
	run  func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string)
	// bodyless: the client never sends the body it announced (the server answered first),
	// so there is no whole request to mirror.
	bodyless bool
}

// readAnswer reads the answers to one request: the 1xx codes before the final one, and the
// final one with its body read.
func readAnswer(t *testing.T, br *bufio.Reader, method string) (interim []int, resp *http.Response, body string) {
	t.Helper()
	for {
		r, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("reading the answer: %v (after 1xx %v)", err, interim)
		}
		if r.StatusCode >= 100 && r.StatusCode < 200 && r.StatusCode != http.StatusSwitchingProtocols {
			interim = append(interim, r.StatusCode)
			if r.StatusCode == http.StatusEarlyHints && r.Header.Get("Link") == "" {
				t.Errorf("103 without its Link header: %v", r.Header)
			}
			continue
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatalf("reading the body: %v", err)
		}
		return interim, r, string(b)
	}
}

func want(t *testing.T, what, got, wanted string) {
	t.Helper()
	if got != wanted {
		t.Errorf("%s = %q, want %q", what, got, wanted)
	}
}

var matrixCases = []matrixCase{
	{"Expect: 100-continue, the server reads the body", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: api\r\nX-User: %s\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", user)
		r, err := http.ReadResponse(br, nil)
		if err != nil || r.StatusCode != http.StatusContinue {
			t.Fatalf("before the body: %v %v, want 100 Continue", r, err)
		}
		io.WriteString(c, "hello")
		_, resp, body := readAnswer(t, br, "POST")
		want(t, "answer", fmt.Sprint(resp.StatusCode, " ", body), "200 "+who+" POST 5 0")
	}, false},
	{"Expect: 100-continue, the server answers at once", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "POST /at-once HTTP/1.1\r\nHost: api\r\nX-User: %s\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", user)
		interim, resp, body := readAnswer(t, br, "POST")
		want(t, "answer", fmt.Sprint(interim, " ", resp.StatusCode, " ", body), "[] 200 "+who+" at once")
	}, true},
	{"Expect: 100-continue with the body sent at once (Python's http.client)", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: api\r\nX-User: %s\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello", user)
		interim, resp, body := readAnswer(t, br, "POST")
		want(t, "answer", fmt.Sprint(interim, " ", resp.StatusCode, " ", body), "[100] 200 "+who+" POST 5 0")
	}, false},
	{"an answer without Date or Content-Type stays without", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "GET /bare HTTP/1.1\r\nHost: api\r\nX-User: %s\r\n\r\n", user)
		_, resp, body := readAnswer(t, br, "GET")
		want(t, "answer", fmt.Sprint(body, " Date=", resp.Header["Date"], " Content-Type=", resp.Header["Content-Type"]), who+" bare Date=[] Content-Type=[]")
	}, false},
	{"103 Early Hints, then the answer", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "GET /hints HTTP/1.1\r\nHost: api\r\nX-User: %s\r\n\r\n", user)
		interim, resp, body := readAnswer(t, br, "GET")
		want(t, "answer", fmt.Sprint(interim, " ", resp.StatusCode, " ", body), "[103] 200 "+who+" hinted")
	}, false},
	{"Upgrade: the connection becomes the server's", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "GET /upgrade HTTP/1.1\r\nHost: api\r\nX-User: %s\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n", user)
		r, err := http.ReadResponse(br, nil)
		if err != nil || r.StatusCode != http.StatusSwitchingProtocols || r.Header.Get("Upgrade") != "echo" {
			t.Fatalf("upgrade answer: %v %v", r, err)
		}
		for _, msg := range []string{"ping\n", "pong\n"} {
			io.WriteString(c, msg)
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			want(t, "upgraded echo", line, who+":"+msg)
		}
	}, false},
	{"a chunked body with trailers both ways", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "POST /trailers HTTP/1.1\r\nHost: api\r\nX-User: %s\r\nTransfer-Encoding: chunked\r\nTrailer: X-Req-Sum\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Req-Sum: 11\r\n\r\n", user)
		_, resp, body := readAnswer(t, br, "POST")
		want(t, "answer", body, who+" hello world")
		want(t, "trailer", resp.Trailer.Get("X-Sum"), who+"-11-11")
	}, false},
	{"HEAD, 204 and 304 carry no body; the connection goes on", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "HEAD /echo HTTP/1.1\r\nHost: api\r\nX-User: %s\r\n\r\n", user)
		_, resp, body := readAnswer(t, br, "HEAD")
		want(t, "HEAD", fmt.Sprint(resp.StatusCode, " ", body), "200 ")
		for _, code := range []string{"204", "304"} {
			fmt.Fprintf(c, "GET /status/%s HTTP/1.1\r\nHost: api\r\nX-User: %s\r\n\r\n", code, user)
			_, resp, body := readAnswer(t, br, "GET")
			want(t, code, fmt.Sprint(resp.StatusCode, " ", body), code+" ")
		}
		fmt.Fprintf(c, "GET /echo HTTP/1.1\r\nHost: api\r\nX-User: %s\r\n\r\n", user)
		_, _, body = readAnswer(t, br, "GET")
		want(t, "after them", body, who+" GET 0 0")
	}, false},
	{"Connection: close ends the connection after the answer", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "GET /echo HTTP/1.1\r\nHost: api\r\nX-User: %s\r\nConnection: close\r\n\r\n", user)
		_, resp, body := readAnswer(t, br, "GET")
		want(t, "answer", fmt.Sprint(resp.Close, " ", body), "true "+who+" GET 0 0")
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("after the answer: %v, want the connection closed", err)
		}
	}, false},
	{"pipelined requests are answered in order", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: api\r\nX-User: %[1]s\r\nContent-Length: 3\r\n\r\nabcGET /echo HTTP/1.1\r\nHost: api\r\nX-User: %[1]s\r\n\r\n", user)
		_, _, first := readAnswer(t, br, "POST")
		_, _, second := readAnswer(t, br, "GET")
		want(t, "answers", first+" | "+second, who+" POST 3 0 | "+who+" GET 0 0")
	}, false},
	{"large headers", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "GET /echo HTTP/1.1\r\nHost: api\r\nX-User: %s\r\nX-Big: %s\r\n\r\n", user, strings.Repeat("b", 200<<10))
		_, _, body := readAnswer(t, br, "GET")
		want(t, "answer", body, fmt.Sprintf("%s GET 0 %d", who, 200<<10))
	}, false},
	{"a slow client's body", func(t *testing.T, c net.Conn, br *bufio.Reader, user, who string) {
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: api\r\nX-User: %s\r\nContent-Length: 10\r\n\r\n", user)
		for range 5 {
			time.Sleep(100 * time.Millisecond)
			io.WriteString(c, "ab")
		}
		_, _, body := readAnswer(t, br, "POST")
		want(t, "answer", body, who+" POST 10 0")
	}, false},
}

// loopback dials the session's local server, wherever a delivery is addressed.
type loopback struct{ addr string }

func (l loopback) DialIn(ctx context.Context, _, _ netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", l.addr)
}

// TestHTTPMatrix runs every HTTP exchange of matrixCases through a filtered steal: the
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
	target := &http.Server{Handler: matrixHandler("target")}
	go func() { _ = target.Serve(tl) }()
	t.Cleanup(func() { target.Close() })
	ll, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	local := &http.Server{Handler: matrixHandler("local")}
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
	for _, tc := range matrixCases {
		for _, side := range []struct{ user, who string }{{"alice", "local"}, {"bob", "target"}} {
			t.Run(tc.name+"/"+side.who, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				conn, err := link.Client.Dial(ctx, "tcp", addr, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				began := time.Now()
				tc.run(t, conn, bufio.NewReader(conn), side.user, side.who)
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
	target := &http.Server{Handler: matrixHandler("target")}
	go func() { _ = target.Serve(tl) }()
	t.Cleanup(func() { target.Close() })
	seen := make(chan string, 64)
	ll, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	localHandler := matrixHandler("local")
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
	for i, tc := range matrixCases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			conn, err := link.Client.Dial(ctx, "tcp", addr, nil)
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			user := fmt.Sprintf("case-%d", i) // tells this case's copies from the others'
			tc.run(t, conn, bufio.NewReader(conn), user, "target")
			conn.Close() // a mirrored connection reaches the session as it ends
			if tc.bodyless {
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
		_, _, body := readAnswer(t, bufio.NewReader(conn), "GET")
		want(t, "answer", body, fmt.Sprintf("connection %d %s", i+1, path))
		conn.Close() // a keep-alive client leaves
	}
}
