package agent

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/nstest"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// TestSessionDialsBounded: a session dials at most MaxDialsPerSession connections from the
// target at once; the next is refused with the limit's name, and a slot frees when a dial
// ends.
func TestSessionDialsBounded(t *testing.T) {
	c, tg := serving(t, Config{}, mirrordv1alpha1.Features{}, nstest.Options{})
	link := nstest.Connect(t, tg)
	// A neighbour of the link that does not exist: each dial waits for ARP (about 3 s).
	nowhere := link.ClientIP[:strings.LastIndex(link.ClientIP, ".")] + ".3:80"
	before := protocol.LimitHits(protocol.LimitDials)
	// Every dial waits seconds, so all of these are in flight at once: the extra ones are
	// refused at once.
	const extra = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var refused []error
	for range protocol.MaxDialsPerSession + extra {
		wg.Go(func() {
			if _, err := c.Dial("tcp", nowhere); err != nil && strings.Contains(err.Error(), "limit") {
				mu.Lock()
				refused = append(refused, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(refused) != extra {
		t.Fatalf("%d of %d dials refused by the limit, want %d: %v", len(refused), protocol.MaxDialsPerSession+extra, extra, refused)
	}
	if !strings.Contains(refused[0].Error(), "limit dials_per_session (64) reached") {
		t.Errorf("the refusal: %v", refused[0])
	}
	if got := protocol.LimitHits(protocol.LimitDials) - before; got != extra {
		t.Errorf("%d hits counted, want %d", got, extra)
	}
	conn, err := c.Dial("tcp", fmt.Sprintf("%s:%d", link.ClientIP, 1))
	if err == nil {
		conn.Close()
	} else if strings.Contains(err.Error(), "limit") {
		t.Errorf("a dial once the others ended: %v", err)
	}
}

// TestSessionIncomingBounded: a session holds at most MaxIncomingPerSession subscriptions on
// one agent, across its connections; another session is not affected.
func TestSessionIncomingBounded(t *testing.T) {
	features := incoming(mirrordv1alpha1.IncomingFeature{Ports: []int32{nstest.HTTPPort}})
	addr, tg := startAgent(t, Config{}, nstest.Options{})
	nstest.Connect(t, tg)
	var subs []*protocol.Subscription
	for i := range protocol.MaxIncomingPerSession {
		sub, err := connect(t, addr, "ns/greedy", features).Subscribe()
		if err != nil {
			t.Fatalf("subscription %d: %v", i+1, err)
		}
		subs = append(subs, sub)
	}
	_, err := connect(t, addr, "ns/greedy", features).Subscribe()
	if err == nil || !strings.Contains(err.Error(), "limit incoming_per_session (2) reached") {
		t.Fatalf("subscription %d: %v, want the limit", protocol.MaxIncomingPerSession+1, err)
	}
	other, err := connect(t, addr, "ns/other", features).Subscribe()
	if err != nil {
		t.Fatalf("another session: %v", err)
	}
	other.Close()
	subs[0].Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		sub, err := connect(t, addr, "ns/greedy", features).Subscribe()
		if err == nil {
			sub.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a subscription after one ended: %v", err)
		}
	}
}
