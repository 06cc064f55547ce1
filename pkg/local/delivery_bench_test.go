//go:build bench

package local_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/incoming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/netstack"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/outgoing"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/sandbox"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/bench/report"
)

// TestBenchDelivery compares the round trip of HTTP requests on one incoming connection
// into the sandboxed command: delivered by a kernel socket made in its namespace against
// the netstack and TUN (the baseline, and the fallback).
func TestBenchDelivery(t *testing.T) {
	if err := sandbox.Supported(); err != nil {
		t.Skip(err)
	}
	const n, reps = 2000, 5
	self, _ := os.Executable()
	var out strings.Builder
	sb, err := sandbox.Start(sandbox.Options{Command: []string{self}, Env: []string{"MIRRORD_TEST_SERVE=1"}, Incoming: true, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Kill()
	if sb.Delivery == nil {
		t.Fatalf("no kernel delivery: %s", sb.NoDelivery)
	}
	st, err := netstack.New(sb.TUN, &outgoing.Handler{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	go func() { _, _ = sb.Run() }()

	dial := func(d incoming.Dialer, port uint16) net.Conn {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		for {
			c, err := d.DialIn(ctx, netip.MustParseAddrPort("10.244.1.9:0"), netip.AddrPortFrom(netip.MustParseAddr(sandbox.ChildIP), port))
			if err == nil {
				return c
			}
			if ctx.Err() != nil {
				t.Fatalf("dialing into the command: %v\n%s", err, out.String())
			}
			time.Sleep(20 * time.Millisecond) // until it listens
		}
	}
	kernel, userspace := dial(sb.Delivery, 8080), dial(st, 8080)
	defer kernel.Close()
	defer userspace.Close()
	var viaKernel, viaNetstack []float64
	for range reps {
		viaNetstack = append(viaNetstack, medianRoundTrip(t, userspace, n))
		viaKernel = append(viaKernel, medianRoundTrip(t, kernel, n))
	}
	row := report.Row{Name: "incoming HTTP round trip into the command (kernel socket)", Unit: "ms", Samples: viaKernel,
		Baseline: "through the netstack and TUN", BaselineSamples: viaNetstack}
	row.RatioAtMost(0.8)
	report.Record(t, row)
}

// medianRoundTrip sends n GETs one after another on c and returns the median, in ms.
func medianRoundTrip(t *testing.T, c net.Conn, n int) float64 {
	d, err := report.KeepAliveRoundTrips(c, []byte("GET /rtt HTTP/1.1\r\nHost: local\r\n\r\n"), n)
	if err != nil {
		t.Fatal(err)
	}
	return float64(d[len(d)/2].Microseconds()) / 1000
}
