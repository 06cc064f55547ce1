//go:build bench

package steal

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/nstest"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/httpfilter"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/bench/report"
)

// roundTrips sends n requests one after another on one keep-alive connection from the client
// namespace and returns their round-trip times, sorted.
func roundTrips(t *testing.T, link *nstest.Link, user string, n int) []time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c, err := link.Client.Dial(ctx, "tcp", fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out, err := report.KeepAliveRoundTrips(c, []byte(fmt.Sprintf("GET /bench HTTP/1.1\r\nHost: api\r\nX-User: %s\r\n\r\n", user)), n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func quantile(d []time.Duration, q float64) float64 {
	return float64(d[int(q*float64(len(d)-1))]) / float64(time.Millisecond)
}

// TestBenchStealLatency compares round trips to the target with no agent (the baseline)
// against requests a filtered steal gives to the session (answered by the agent side here:
// the session protocol adds its own hop later) and requests it passes on to the target.
func TestBenchStealLatency(t *testing.T) {
	const n, reps = 2000, 3
	tg, link, ns := targetWithClient(t)
	filter, err := httpfilter.Compile(&mirrordv1alpha1.HTTPFilter{Header: "^X-User: alice$"})
	if err != nil {
		t.Fatal(err)
	}
	body := tg.Token + " GET /bench" // the same answer as the target's
	session := func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, ContentLength: int64(len(body)), Body: io.NopCloser(strings.NewReader(body))}, nil
	}
	var direct, stolen, passed struct{ p50, p99 []float64 }
	add := func(into *struct{ p50, p99 []float64 }, d []time.Duration) {
		into.p50 = append(into.p50, quantile(d, 0.5))
		into.p99 = append(into.p99, quantile(d, 0.99))
	}
	for range reps {
		add(&direct, roundTrips(t, link, "alice", n))
		var s *Stealer
		s, err = Start(t.Context(), ns, NFTables, "bench", func(c net.Conn, orig netip.AddrPort) {
			_ = Serve(context.Background(), c, filter, RoundTripFunc(session), func(ctx context.Context) (net.Conn, error) { return s.DialOriginal(ctx, orig, ClientOf(c)) })
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Steal(nstest.HTTPPort, true); err != nil {
			t.Fatal(err)
		}
		add(&stolen, roundTrips(t, link, "alice", n))
		add(&passed, roundTrips(t, link, "bob", n))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	rows := []report.Row{}
	for _, r := range []struct {
		name     string
		samples  []float64
		base     []float64
		maxAdded float64 // 0: no target
	}{
		{"steal: stolen request p50 (agent side)", stolen.p50, direct.p50, 0.3},
		{"steal: stolen request p99 (agent side)", stolen.p99, direct.p99, 0},
		{"steal: request passed on to the target p50", passed.p50, direct.p50, 0},
		{"steal: request passed on to the target p99", passed.p99, direct.p99, 0},
	} {
		row := report.Row{Name: r.name, Unit: "ms", Samples: r.samples, Baseline: "direct to the target, no agent", BaselineSamples: r.base}
		if r.maxAdded > 0 {
			added := row.Median() - report.Median(r.base)
			row.Target = fmt.Sprintf("<= baseline + %.1f ms (added %.3f ms)", r.maxAdded, added)
			ok := added <= r.maxAdded
			row.Met = &ok
		}
		rows = append(rows, row)
	}
	report.Record(t, rows...)
}

// TestBenchSIGKILL times the SIGKILL of a stealing agent until its rules are gone and the
// target answers a new connection itself: with nftables the kernel removes the owned table;
// with iptables the agent's supervisor removes its chain.
func TestBenchSIGKILL(t *testing.T) {
	const reps = 5
	var rows []report.Row
	for _, backend := range backends {
		tg, link, ns := targetWithClient(t)
		addr := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)
		var samples []float64
		for range reps {
			cmd, agentPID := startHelper(t, tg.PID, backend, backend != NFTables)
			start := time.Now()
			if err := syscall.Kill(agentPID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			for len(leftovers(t, ns)) != 0 || !answersFrom(link.Client, addr, tg.Token) {
				if time.Since(start) > 10*time.Second {
					t.Fatalf("%s: the target did not recover within 10 s", backend)
				}
				time.Sleep(time.Millisecond)
			}
			samples = append(samples, float64(time.Since(start))/float64(time.Millisecond))
			_ = cmd.Wait()
		}
		name := "steal: agent SIGKILL to target serving, no rule left"
		if backend != NFTables {
			name += " (" + string(backend) + ", supervisor)"
		}
		row := report.Row{Name: name, Unit: "ms", Samples: samples}
		row.AtMost(1000)
		rows = append(rows, row)
	}
	report.Record(t, rows...)
}

// answersFrom reports whether a request to addr made in ns is answered by the target whose
// token is token (a failed request is not).
func answersFrom(ns *netns.Handle, addr, token string) bool {
	body, err := nstest.Get(ns, addr, "", "/probe", time.Second)
	return err == nil && strings.HasPrefix(body, token)
}

// TestBenchStealSessionsComeAndGo: filtered sessions start and end over and over while a
// client sends requests none of them match, each on a new connection: the target should
// answer every one. About one request in 40,000 hung here until the tables kept conntrack
// on (keepConntrack; TestStealEndAnswersItsConnections is its unit test); this stress stays
// a bench row, as it takes a while and wants a busy machine.
func TestBenchStealSessionsComeAndGo(t *testing.T) {
	tg, link, ns := targetWithClient(t)
	addr := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)
	ctx, cancel := context.WithCancel(t.Context())
	type result struct{ sent, failed int }
	done := make(chan result)
	go func() {
		var r result
		for i := 0; ctx.Err() == nil; i++ {
			r.sent++
			if err := getOnce(link, addr, fmt.Sprintf("/%d", i), tg.Token); err != nil {
				r.failed++
				t.Logf("request %d: %v", i, err)
			}
		}
		done <- r
	}()
	for i := range 40 {
		s := startFiltered(t, ns, NFTables, fmt.Sprintf("user%d", i))
		time.Sleep(50 * time.Millisecond)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	r := <-done
	t.Logf("%d requests, %d failed", r.sent, r.failed)
	row := report.Row{Name: "steal: requests answered while 40 filtered sessions start and end", Unit: "req",
		Samples: []float64{float64(r.sent - r.failed)}, Baseline: "requests sent", BaselineSamples: []float64{float64(r.sent)}}
	row.RatioAtLeast(1)
	report.Record(t, row)
}

// getOnce sends one request on a new connection and checks that the target answered it.
func getOnce(link *nstest.Link, addr, path, token string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := link.Client.Dial(ctx, "tcp", addr, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: api\r\nX-User: nobody\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if want := token + " GET " + path; string(b) != want {
		return fmt.Errorf("answered %q, want %q", b, want)
	}
	return nil
}
