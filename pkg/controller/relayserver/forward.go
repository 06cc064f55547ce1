// Package relayserver is the relay every controller runs: it carries the session protocol
// between hops. The Primary relays a CLI's session to each member cluster's relay, and a
// member relays to its agents. Both speak the same protocol on both sides, so a relay only
// routes streams: env, files, DNS and outgoing to one upstream (the Default cluster, then
// one of its agents), incoming subscriptions to every upstream (every Workload cluster, then
// every agent), each delivery on its own stream. Its clients dial it with package relay.
package relayserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"k8s.io/klog/v2"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// Upstream is one next hop: a member cluster's relay, or an agent.
type Upstream struct {
	// Key identifies it across calls to Route.Incoming.
	Key string
	// Describe names it in errors users read, e.g. "cluster c2" or "agent of pod api-1".
	Describe string
	// Dial connects and runs the handshake.
	Dial func(ctx context.Context) (*yamux.Session, error)
}

// Route says where a session's operations go.
type Route interface {
	// Stateful is the upstream that answers env, files, DNS and outgoing.
	Stateful(ctx context.Context) (Upstream, error)
	// Incoming is every upstream that receives the target's traffic now. It is asked again
	// every followInterval, so agents of new pods join a running subscription.
	Incoming(ctx context.Context) ([]Upstream, error)
}

// followInterval is how often a subscription looks for new or gone upstreams.
const followInterval = 2 * time.Second

// Serve relays every stream of down until it closes or ctx ends.
func Serve(ctx context.Context, down *yamux.Session, route Route) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := &pool{conns: map[string]*yamux.Session{}}
	defer p.close()
	go func() {
		select {
		case <-ctx.Done():
		case <-down.CloseChan():
		}
		_ = down.Close()
		cancel()
	}()
	protocol.AcceptStreams(down, func(st *yamux.Stream) {
		if err := serveStream(ctx, down, st, route, p); err != nil {
			klog.FromContext(ctx).V(2).Info("Relayed stream ended", "err", err)
		}
	})
}

func fail(st io.Writer, err error) error {
	return protocol.WriteMessage(st, protocol.Response{Error: err.Error()})
}

func serveStream(ctx context.Context, down *yamux.Session, st *yamux.Stream, route Route, p *pool) error {
	var req protocol.Request
	if err := protocol.ReadMessage(st, &req); err != nil {
		return err
	}
	if err := req.Validate(); err != nil {
		return fail(st, err)
	}
	if req.Op == protocol.OpIncoming {
		return subscribe(ctx, down, st, req, route, p)
	}
	up, err := route.Stateful(ctx)
	if err != nil {
		return fail(st, err)
	}
	sess, err := p.get(ctx, up)
	if err != nil {
		return fail(st, err)
	}
	ust, err := sess.OpenStream()
	if err != nil {
		p.drop(up.Key, sess)
		return fail(st, fmt.Errorf("%s: %w", up.Describe, err))
	}
	defer ust.Close()
	if err := protocol.WriteMessage(ust, req); err != nil {
		return fail(st, fmt.Errorf("%s: %w", up.Describe, err))
	}
	splice(st, ust)
	return nil
}

// splice copies both ways until both directions end; each side's end half-closes the other.
func splice(a, b *yamux.Stream) {
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = protocol.Copy(b, a)
		_ = b.Close()
	})
	_, _ = protocol.Copy(a, b)
	_ = a.Close()
	wg.Wait()
}

// subscribe subscribes to every incoming upstream, relays each delivery downstream on a
// stream of its own, and follows the upstreams until the subscriber closes st.
func subscribe(ctx context.Context, down *yamux.Session, st *yamux.Stream, req protocol.Request, route Route, p *pool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &subscriptions{down: down, req: req, p: p, subs: map[string]*subscription{}, adding: map[string]bool{}}
	defer s.closeAll()
	ups, err := route.Incoming(ctx)
	if err == nil && len(ups) == 0 {
		err = errors.New("no agent is ready to receive the target's traffic")
	}
	if err != nil {
		return fail(st, err)
	}
	for _, up := range ups {
		if err := s.add(ctx, up); err != nil {
			return fail(st, err)
		}
	}
	if err := protocol.WriteMessage(st, protocol.Response{}); err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(followInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			ups, err := route.Incoming(ctx)
			if errors.Is(err, ErrSessionEnded) {
				// The whole connection goes: its agents drop the session's rules and captures
				// now, not when the developer's side notices.
				klog.FromContext(ctx).V(1).Info("Session ended: closing its relay connection", "err", err)
				_ = down.Close()
				return
			}
			if err != nil {
				continue // keep what runs; the next round retries
			}
			s.follow(ctx, ups)
		}
	}()
	_, _ = io.Copy(io.Discard, st) // subscribed until the subscriber closes its stream
	return nil
}

type subscriptions struct {
	down *yamux.Session
	req  protocol.Request
	p    *pool

	mu     sync.Mutex
	subs   map[string]*subscription
	adding map[string]bool // upstreams a follow round is subscribing to
}

type subscription struct {
	sub  *protocol.Subscription
	sess *yamux.Session
}

// add subscribes to up and relays its deliveries.
func (s *subscriptions) add(ctx context.Context, up Upstream) error {
	sess, err := s.p.get(ctx, up)
	if err != nil {
		return err
	}
	sub, err := protocol.NewClient(sess).Subscribe()
	if err != nil {
		return fmt.Errorf("%s: %w", up.Describe, err)
	}
	s.mu.Lock()
	if ctx.Err() != nil { // the subscriber left while this one was being made
		s.mu.Unlock()
		_ = sub.Close()
		return ctx.Err()
	}
	s.subs[up.Key] = &subscription{sub: sub, sess: sess}
	s.mu.Unlock()
	go func() {
		defer func() {
			s.mu.Lock()
			if cur, ok := s.subs[up.Key]; ok && cur.sub == sub {
				delete(s.subs, up.Key)
			}
			s.mu.Unlock()
			_ = sub.Close()
		}()
		for {
			in, c, err := sub.Accept()
			if err != nil {
				return
			}
			go s.deliver(in, c)
		}
	}()
	return nil
}

// deliver opens a downstream stream for one delivery and splices it with the upstream's.
func (s *subscriptions) deliver(in protocol.Incoming, c net.Conn) {
	up := c.(*yamux.Stream)
	defer up.Close()
	d, err := s.down.OpenStream()
	if err != nil {
		return
	}
	defer d.Close()
	if err := protocol.WriteMessage(d, in); err != nil {
		return
	}
	splice(d, up)
}

// follow subscribes to new upstreams and drops gone ones. New ones are subscribed each on
// its own: one that does not answer (an agent whose pod went, still listed until its status
// catches up; a member whose API server is down) waits out its dial timeout without holding
// up the others.
func (s *subscriptions) follow(ctx context.Context, ups []Upstream) {
	want := map[string]bool{}
	for _, up := range ups {
		want[up.Key] = true
		s.mu.Lock()
		_, have := s.subs[up.Key]
		busy := s.adding[up.Key]
		if !have && !busy {
			s.adding[up.Key] = true
		}
		s.mu.Unlock()
		if have || busy {
			continue
		}
		go func() {
			err := s.add(ctx, up)
			s.mu.Lock()
			delete(s.adding, up.Key)
			s.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				klog.FromContext(ctx).Info("Subscribing a new upstream", "upstream", up.Describe, "err", err)
			}
		}()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, sub := range s.subs {
		if !want[k] {
			_ = sub.sub.Close()
			delete(s.subs, k)
		}
	}
}

func (s *subscriptions) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, sub := range s.subs {
		_ = sub.sub.Close()
		delete(s.subs, k)
	}
}

// pool holds one connection per upstream for one downstream connection, dialled on first
// use and again after it breaks.
type pool struct {
	mu    sync.Mutex
	conns map[string]*yamux.Session
	// dialing serialises dials per upstream.
	dialing sync.Map
}

func (p *pool) get(ctx context.Context, up Upstream) (*yamux.Session, error) {
	lock, _ := p.dialing.LoadOrStore(up.Key, &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	defer lock.(*sync.Mutex).Unlock()
	p.mu.Lock()
	s := p.conns[up.Key]
	p.mu.Unlock()
	if s != nil && !s.IsClosed() {
		return s, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	s, err := up.Dial(dctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", up.Describe, err)
	}
	p.mu.Lock()
	p.conns[up.Key] = s
	p.mu.Unlock()
	return s, nil
}

func (p *pool) drop(key string, s *yamux.Session) {
	p.mu.Lock()
	if p.conns[key] == s {
		delete(p.conns, key)
	}
	p.mu.Unlock()
	_ = s.Close()
}

func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, s := range p.conns {
		_ = s.Close()
		delete(p.conns, k)
	}
}

// sortUpstreams orders upstreams by key, so "the first" is stable.
func sortUpstreams(ups []Upstream) {
	sort.Slice(ups, func(i, j int) bool { return ups[i].Key < ups[j].Key })
}
