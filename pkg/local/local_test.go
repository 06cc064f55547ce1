// Package local_test runs the whole local side (sandbox, netstack, outgoing, DNS, incoming)
// against an in-process session server: real namespaces, a real TUN, real nftables, and a
// static Go program as the command. The cluster side is covered by the e2e suite.
package local_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/incoming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/netstack"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/outgoing"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/sandbox"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// The "cluster" the fake session serves: one Service name and address.
const (
	svcName = "api.shop.svc.cluster.local."
	svcIP   = "10.96.7.7"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sandbox.InitArg {
		sandbox.Init()
	}
	if os.Getenv("MIRRORD_TEST_COMMAND") == "1" {
		os.Exit(command())
	}
	os.Exit(m.Run())
}

// command is what runs in the sandbox: it resolves and calls the Service, then answers one
// incoming request on :8080 (bound to 127.0.0.1, as development servers often are).
func command() int {
	ln, err := net.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		fmt.Println("listen:", err)
		return 3
	}
	fmt.Println("env:", os.Getenv("FROM_TARGET"))
	addrs, err := net.LookupHost("api") // the search list of the target's resolv.conf
	fmt.Println("lookup:", addrs, err)
	resp, err := http.Get("http://api:80/")
	if err != nil {
		fmt.Println("get:", err)
		return 4
	}
	b, _ := io.ReadAll(resp.Body)
	fmt.Println("get:", strings.TrimSpace(string(b)))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "local answer to %s from %s", r.URL.Path, r.RemoteAddr)
		go func() { time.Sleep(200 * time.Millisecond); ln.Close() }()
	})}
	_ = srv.Serve(ln)
	return 7
}

// fakeSession serves the protocol the way the Primary would.
func fakeSession(t *testing.T, cluster string, incomingAnswer chan<- string) *protocol.Client {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, sess, err := protocol.Accept(c, nil)
		if err != nil {
			return
		}
		for {
			st, err := sess.AcceptStream()
			if err != nil {
				return
			}
			go func() {
				defer st.Close()
				var req protocol.Request
				if protocol.ReadMessage(st, &req) != nil {
					return
				}
				switch req.Op {
				case protocol.OpDNS:
					_ = protocol.WriteMessage(st, protocol.Response{Data: answer(req.Data)})
				case protocol.OpDial:
					if req.Address != svcIP+":80" {
						_ = protocol.WriteMessage(st, protocol.Response{Error: "connection refused", Errno: 111})
						return
					}
					up, err := net.Dial("tcp", cluster)
					if err != nil {
						_ = protocol.WriteMessage(st, protocol.Response{Error: err.Error()})
						return
					}
					_ = protocol.WriteMessage(st, protocol.Response{})
					go func() { _, _ = io.Copy(up, st) }()
					_, _ = io.Copy(st, up)
				case protocol.OpIncoming:
					_ = protocol.WriteMessage(st, protocol.Response{})
					// Until the command listens, the local side answers 502: retry as a client would.
					for range 100 {
						d, err := sess.OpenStream()
						if err != nil {
							return
						}
						_ = protocol.WriteMessage(d, protocol.Incoming{Kind: protocol.IncomingRequest, Client: "10.244.1.9:40000", Server: "10.244.2.3:8080"})
						_, _ = io.WriteString(d, "GET /stolen HTTP/1.1\r\nHost: api\r\n\r\n")
						resp, err := http.ReadResponse(bufio.NewReader(d), nil)
						if err != nil {
							d.Close()
							return
						}
						b, _ := io.ReadAll(resp.Body)
						d.Close()
						if resp.StatusCode != http.StatusBadGateway {
							incomingAnswer <- string(b)
							break
						}
						time.Sleep(50 * time.Millisecond)
					}
					_, _ = io.Copy(io.Discard, st)
				default:
					_ = protocol.WriteMessage(st, protocol.Response{Error: "not served here"})
				}
			}()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sess, err := protocol.Dial(c, protocol.Hello{Session: "test/s"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return protocol.NewClient(sess)
}

// answer resolves svcName to svcIP, anything else to NXDOMAIN.
func answer(q []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	question, _ := p.Question()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RecursionAvailable: true})
	_ = b.StartQuestions()
	_ = b.Question(question)
	_ = b.StartAnswers()
	if question.Name.String() == svcName && question.Type == dnsmessage.TypeA {
		ip := netip.MustParseAddr(svcIP).As4()
		_ = b.AResource(dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 5}, dnsmessage.AResource{A: ip})
	} else if question.Name.String() != svcName {
		b = dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RCode: dnsmessage.RCodeNameError})
		_ = b.StartQuestions()
		_ = b.Question(question)
	}
	out, _ := b.Finish()
	return out
}

func TestSandboxThroughSession(t *testing.T) {
	if err := sandbox.Supported(); err != nil {
		t.Skip(err)
	}
	cluster := httpServer(t, "hello from the cluster")
	answers := make(chan string, 1)
	client := fakeSession(t, cluster, answers)
	h := &outgoing.Handler{Remote: client, TCP: true, UDP: true, DNS: true, DNSAddr: netip.MustParseAddr(sandbox.DNSIP)}
	self, _ := os.Executable()
	var out strings.Builder
	sb, err := sandbox.Start(sandbox.Options{
		Command:    []string{self},
		Env:        []string{"MIRRORD_TEST_COMMAND=1", "FROM_TARGET=yes"},
		ResolvConf: outgoing.SandboxResolvConf([]byte("nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local\noptions ndots:5\n"), h.DNSAddr),
		Stdout:     &out, Stderr: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := netstack.New(sb.TUN, h)
	if err != nil {
		sb.Kill()
		t.Fatal(err)
	}
	defer st.Close()
	sub, err := client.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	d := &incoming.Deliverer{Dialer: st, Target: netip.MustParseAddr(sandbox.ChildIP)}
	go func() { _ = d.Serve(context.Background(), sub) }()
	code, err := sb.Run()
	t.Logf("command output:\n%s", out.String())
	if err != nil || code != 7 {
		t.Fatalf("exit %d, %v", code, err)
	}
	for _, want := range []string{"env: yes", "lookup: [" + svcIP + "]", "get: hello from the cluster"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	select {
	case a := <-answers:
		if a != "local answer to /stolen from 10.244.1.9:40000" {
			t.Errorf("incoming answer %q", a)
		}
	case <-time.After(5 * time.Second):
		t.Error("the incoming request was not answered")
	}
}

func httpServer(t *testing.T, body string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, body) })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
