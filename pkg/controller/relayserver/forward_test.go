package relayserver

import (
	"context"
	"io"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// upstreamServer is a peer that answers env with its name and, once subscribed, delivers
// one stream carrying its name.
func upstreamServer(t testing.TB, name string) Upstream {
	return Upstream{Key: name, Describe: name, Dial: func(context.Context) (*yamux.Session, error) {
		a, b := net.Pipe()
		go func() {
			_, sess, err := protocol.Accept(b, nil)
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
					case protocol.OpEnv:
						_ = protocol.WriteMessage(st, protocol.Response{Env: map[string]string{"FROM": name}})
					case protocol.OpIncoming:
						_ = protocol.WriteMessage(st, protocol.Response{})
						d, err := sess.OpenStream()
						if err != nil {
							return
						}
						_ = protocol.WriteMessage(d, protocol.Incoming{Kind: protocol.IncomingMirror, Client: "1.1.1.1:1", Server: "2.2.2.2:80"})
						_, _ = io.WriteString(d, "from "+name)
						d.Close()
						_, _ = io.Copy(io.Discard, st)
					}
				}()
			}
		}()
		return protocol.Dial(a, protocol.Hello{Session: "x/" + name}, nil)
	}}
}

type staticRoute struct {
	def Upstream
	all []Upstream
}

func (r staticRoute) Stateful(context.Context) (Upstream, error)   { return r.def, nil }
func (r staticRoute) Incoming(context.Context) ([]Upstream, error) { return r.all, nil }

func TestServeRoutes(t *testing.T) {
	c2, c3 := upstreamServer(t, "c2"), upstreamServer(t, "c3")
	client := protocol.NewClient(serving(t, staticRoute{def: c2, all: []Upstream{c2, c3}}))
	defer client.Close()
	env, err := client.Env()
	if err != nil || env["FROM"] != "c2" {
		t.Fatalf("env from the Default upstream: %v %v", env, err)
	}
	sub, err := client.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 2 {
		done := make(chan struct{})
		go func() {
			defer close(done)
			in, st, err := sub.Accept()
			if err != nil {
				return
			}
			b, _ := io.ReadAll(st)
			if in.Kind != protocol.IncomingMirror || in.Server != "2.2.2.2:80" {
				t.Errorf("delivery header %+v", in)
			}
			got = append(got, string(b))
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("no delivery")
		}
	}
	sort.Strings(got)
	if len(got) != 2 || got[0] != "from c2" || got[1] != "from c3" {
		t.Errorf("deliveries %q, want one from every workload upstream", got)
	}
}

// TestFollowIsNotHeldUpByADeadUpstream: a subscription follows new upstreams each on its
// own: one whose dial hangs (an agent whose pod went away) does not delay the next one.
func TestFollowIsNotHeldUpByADeadUpstream(t *testing.T) {
	c2 := upstreamServer(t, "c2")
	dead := Upstream{Key: "a-dead", Describe: "a dead agent", Dial: func(ctx context.Context) (*yamux.Session, error) {
		<-ctx.Done() // as a dial to a vanished pod IP: nothing answers until the timeout
		return nil, ctx.Err()
	}}
	route := &changingRoute{}
	client := protocol.NewClient(serving(t, route))
	defer client.Close()
	route.set(upstreamServer(t, "c3"))
	sub, err := client.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	// The dead one sorts first, as the old pod's agent did.
	route.set(dead, c2)
	start := time.Now()
	got := make(chan string, 4)
	go func() {
		for {
			_, st, err := sub.Accept()
			if err != nil {
				return
			}
			b, _ := io.ReadAll(st)
			got <- string(b)
		}
	}()
	for {
		select {
		case from := <-got:
			if from == "from c2" {
				if d := time.Since(start); d > 2*followInterval+time.Second {
					t.Errorf("the new upstream was subscribed %s after it appeared, behind the dead one", d)
				}
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the new upstream was never subscribed")
		}
	}
}

// TestSessionEndClosesTheConnection: once the route says the session ended, the relay closes
// the downstream connection and, with it, its upstream connections (an agent serving other
// sessions drops this one's rules when its connection closes).
func TestSessionEndClosesTheConnection(t *testing.T) {
	upClosed := make(chan struct{})
	c2 := upstreamServer(t, "c2")
	watched := Upstream{Key: c2.Key, Describe: c2.Describe, Dial: func(ctx context.Context) (*yamux.Session, error) {
		s, err := c2.Dial(ctx)
		if err == nil {
			go func() { <-s.CloseChan(); close(upClosed) }()
		}
		return s, err
	}}
	route := &changingRoute{}
	route.set(watched)
	sess := serving(t, route)
	defer sess.Close()
	sub, err := protocol.NewClient(sess).Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	route.end()
	for name, ch := range map[string]<-chan struct{}{"downstream": sess.CloseChan(), "upstream": upClosed} {
		select {
		case <-ch:
		case <-time.After(2*followInterval + 2*time.Second):
			t.Fatalf("the %s connection is still open after the session ended", name)
		}
	}
}

// serving relays a new downstream connection with route and returns its client side.
func serving(t testing.TB, route Route) *yamux.Session {
	t.Helper()
	a, b := net.Pipe()
	ctx := t.Context() // here: a fuzz target's F may not be asked from the goroutine
	go func() {
		_, sess, err := protocol.Accept(b, nil)
		if err != nil {
			return
		}
		Serve(ctx, sess, route)
	}()
	sess, err := protocol.Dial(a, protocol.Hello{Session: "ns/s"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

// changingRoute's incoming upstreams change while a subscription follows them.
type changingRoute struct {
	mu    sync.Mutex
	all   []Upstream
	ended bool
}

func (r *changingRoute) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = true
}

func (r *changingRoute) set(ups ...Upstream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = ups
}

func (r *changingRoute) Stateful(context.Context) (Upstream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.all[0], nil
}

func (r *changingRoute) Incoming(context.Context) ([]Upstream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return nil, ErrSessionEnded
	}
	return append([]Upstream(nil), r.all...), nil
}
