package mirror

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/bpf"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/nstest"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
)

func TestMain(m *testing.M) {
	if benchMain != nil {
		benchMain()
	}
	nstest.Main(m)
}

// benchMain runs a benchmark's helper process instead of the tests (set by bench_test.go).
var benchMain func()

// frame builds an Ethernet+IPv4/IPv6+TCP header with the given ports (no payload).
func frame(v6 bool, src, dst uint16, fragOff uint16) []byte {
	var b []byte
	b = append(b, make([]byte, 12)...)
	if v6 {
		b = append(b, 0x86, 0xdd)
		ip := make([]byte, 40)
		ip[0], ip[6] = 0x60, 6
		b = append(b, ip...)
	} else {
		b = append(b, 0x08, 0x00)
		ip := make([]byte, 20)
		ip[0], ip[9] = 0x45, 6
		ip[6], ip[7] = byte(fragOff>>8), byte(fragOff)
		b = append(b, ip...)
	}
	tcp := make([]byte, 20)
	tcp[0], tcp[1], tcp[2], tcp[3] = byte(src>>8), byte(src), byte(dst>>8), byte(dst)
	return append(b, tcp...)
}

func TestFilter(t *testing.T) {
	raw, err := filterFor([]uint16{8080, 9090})
	if err != nil {
		t.Fatal(err)
	}
	var prog []bpf.Instruction
	for _, r := range raw {
		prog = append(prog, r.Disassemble())
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		keep bool
	}{
		{"v4 to a port", frame(false, 40000, 8080, 0), true},
		{"v4 from a port (the server's half)", frame(false, 9090, 40000, 0), true},
		{"v4 other port", frame(false, 40000, 443, 0), false},
		{"v4 later fragment", frame(false, 40000, 8080, 0x0010), false},
		{"v6 to a port", frame(true, 40000, 9090, 0), true},
		{"v6 other port", frame(true, 40000, 22, 0), false},
		{"ARP", append(make([]byte, 12), 0x08, 0x06, 0, 0), false},
	} {
		n, err := vm.Run(tc.pkt)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if (n > 0) != tc.keep {
			t.Errorf("%s: kept %v, want %v", tc.name, n > 0, tc.keep)
		}
	}
	if _, err := filterFor(nil); err == nil {
		t.Error("no ports accepted")
	}
}

// targetWithClient starts a fake target, links a client namespace to it, and opens the
// target's network namespace (closed when the test ends).
func targetWithClient(t *testing.T) (*nstest.Target, *nstest.Link, *netns.Handle) {
	t.Helper()
	tg := nstest.Start(t, nstest.Options{})
	link := nstest.Connect(t, tg)
	ns, err := netns.OfPID("/proc", tg.PID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return tg, link, ns
}

// TestMirror sends requests from another namespace and checks that the mirror got every
// byte of every connection, in order, while the target answered all of them.
func TestMirror(t *testing.T) {
	tg, link, ns := targetWithClient(t)

	var mu sync.Mutex
	got := map[string]*bytes.Buffer{}
	var done sync.WaitGroup
	m, err := Start(ns, []uint16{nstest.HTTPPort}, func(c *Conn) {
		done.Add(1)
		defer done.Done()
		var b bytes.Buffer
		_, _ = io.Copy(&b, c.Data)
		mu.Lock()
		got[c.Client.String()] = &b
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	time.Sleep(100 * time.Millisecond) // the capture's first poll

	const conns, perConn = 10, 20
	sent := map[string]string{}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for i := range conns {
		c, err := link.Client.Dial(ctx, "tcp", fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort), nil)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		var all bytes.Buffer
		for j := range perConn {
			body := bytes.Repeat([]byte{byte('a' + j%26)}, 100*j+i)
			req := fmt.Sprintf("POST /c%d/r%d HTTP/1.1\r\nHost: api\r\nContent-Length: %d\r\n\r\n%s", i, j, len(body), body)
			all.WriteString(req)
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("the target did not answer while mirrored: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			if want := fmt.Sprintf("%s POST /c%d/r%d", tg.Token, i, j); string(b) != want {
				t.Fatalf("target answered %q, want %q", b, want)
			}
		}
		sent[c.LocalAddr().String()] = all.String()
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= conns || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	done.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != conns {
		t.Fatalf("mirrored %d connections, want %d", len(got), conns)
	}
	for client, want := range sent {
		b, ok := got[client]
		if !ok {
			t.Errorf("connection from %s not mirrored", client)
			continue
		}
		if b.String() != want {
			t.Errorf("connection from %s: mirrored %d bytes, sent %d; equal: %v", client, b.Len(), len(want), b.String() == want)
		}
	}
}
