package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"k8s.io/klog/v2"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/mirror"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/steal"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/httpfilter"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// incomingPorts are the target ports the session intercepts: its configured ports, or every
// port the target listens on, less the ignored ones.
func (a *Agent) incomingPorts(in mirrordv1alpha1.IncomingFeature, t *served) ([]uint16, error) {
	var ports []uint16
	if len(in.Ports) > 0 {
		for _, p := range in.Ports {
			if p < 1 || p > 65535 {
				return nil, fmt.Errorf("feature.network.incoming.ports: %d is out of range 1-65535", p)
			}
			ports = append(ports, uint16(p))
		}
	} else {
		live, err := t.ns.ListeningTCPPorts()
		if err != nil {
			return nil, fmt.Errorf("listing the target's ports: %w", err)
		}
		for p := range live {
			ports = append(ports, p)
		}
	}
	ports = slices.DeleteFunc(ports, func(p uint16) bool { return slices.Contains(in.IgnorePorts, int32(p)) })
	slices.Sort(ports)
	if len(ports) == 0 {
		return nil, errors.New("the target listens on no TCP port to intercept: set feature.network.incoming.ports")
	}
	return ports, nil
}

// exceptNode says whether a steal of port leaves the node's connections to the target: on
// the ports the kubelet probes, unless the session steals the probes too. The pod then stays
// Ready whatever the local process answers.
func exceptNode(port uint16, probePorts []int32, stealProbes bool) bool {
	return !stealProbes && slices.Contains(probePorts, int32(port))
}

// nodeAddrs is the node's addresses (nodeAddrs), looked up once.
func (a *Agent) nodeAddrs() ([]netip.Addr, error) {
	a.nodeOnce.Do(func() {
		a.node, a.nodeErr = nodeAddrs(a.procRoot)
		if a.nodeErr == nil {
			klog.Background().Info("Connections from the node's addresses keep reaching the probed ports", "addresses", a.node)
		}
	})
	return a.node, a.nodeErr
}

// serveIncoming subscribes the session to the target's incoming traffic until the
// subscription's stream closes.
func (a *Agent) serveIncoming(ctx context.Context, se *session, sess *yamux.Session, st *yamux.Stream, t *served) error {
	in := se.features.Network.Incoming
	mode := in.Mode
	if mode == "" {
		mode = mirrordv1alpha1.IncomingModeMirror
	}
	ports, err := a.incomingPorts(in, t)
	switch {
	case a.cfg.Targetless:
		err = errors.New("a targetless session receives no incoming traffic: name a target (--target deploy/NAME) to mirror or steal its traffic")
	case mode == mirrordv1alpha1.IncomingModeOff:
		err = errors.New("incoming traffic is off for this session")
	}
	if err != nil {
		return protocol.WriteMessage(st, failure(err))
	}
	release, err := a.holdIncoming(se.name)
	if err != nil {
		return protocol.WriteMessage(st, failure(err))
	}
	defer release()
	// deliver opens a stream back to the session for one connection or request.
	deliver := func(kind protocol.IncomingKind, client, server string) (*yamux.Stream, error) {
		s, err := sess.OpenStream()
		if err != nil {
			return nil, err
		}
		if err := protocol.WriteMessage(s, protocol.Incoming{Kind: kind, Client: client, Server: server}); err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	}

	switch mode {
	case mirrordv1alpha1.IncomingModeMirror:
		unsubscribe, err := t.mirror.Subscribe(ports, func(c *mirror.Conn) {
			s, err := deliver(protocol.IncomingMirror, c.Client.String(), c.Server.String())
			if err != nil {
				_, _ = io.Copy(io.Discard, c.Data) // the capture never waits; drain our copy
				return
			}
			_, _ = protocol.Copy(s, c.Data)
			s.Close()
			// If the session stopped reading (it closed the delivery, or went away), drain the
			// rest of our copy, so its buffer does not hold the connection until it ends.
			_, _ = io.Copy(io.Discard, c.Data)
		})
		if err != nil {
			return protocol.WriteMessage(st, failure(err))
		}
		defer unsubscribe()
	case mirrordv1alpha1.IncomingModeSteal:
		p32 := make([]int32, len(ports))
		for i, p := range ports {
			p32[i] = int32(p)
		}
		filter, err := httpfilter.Compile(in.HTTPFilter)
		if err != nil {
			return protocol.WriteMessage(st, failure(err))
		}
		if err := steal.CheckPorts(p32); err != nil {
			return protocol.WriteMessage(st, failure(err))
		}
		var s *steal.Stealer
		s, err = steal.Start(ctx, t.ns, steal.Backend(a.cfg.StealBackend), se.name, func(c net.Conn, orig netip.AddrPort) {
			if filter == nil {
				stealWhole(c, orig, deliver)
				return
			}
			relay := &requestRelay{conn: c, orig: orig.String(), deliver: deliver}
			defer relay.close()
			_ = steal.Serve(ctx, c, filter, steal.RoundTripFunc(relay.roundTrip),
				func(ctx context.Context) (net.Conn, error) { return s.DialOriginal(ctx, orig, steal.ClientOf(c)) })
		})
		if err != nil {
			return protocol.WriteMessage(st, failure(err))
		}
		defer s.Close()
		for _, p := range ports {
			var except []netip.Addr
			if exceptNode(p, a.cfg.ProbePorts, in.StealProbePorts) {
				if except, err = a.nodeAddrs(); err != nil {
					return protocol.WriteMessage(st, failure(fmt.Errorf("port %d serves the pod's probes, and the agent cannot tell the kubelet's connections from others: %w; set stealProbePorts to steal the probes too, or pick other ports", p, err)))
				}
			}
			if err := s.StealExcept(p, filter != nil, except); err != nil {
				return protocol.WriteMessage(st, failure(err))
			}
		}
	default:
		return protocol.WriteMessage(st, failure(fmt.Errorf("feature.network.incoming.mode %q: want mirror, steal or off", mode)))
	}
	if err := protocol.WriteMessage(st, protocol.Response{}); err != nil {
		return err
	}
	// Subscribed until the session closes the stream (or the connection goes).
	_, _ = io.Copy(io.Discard, st)
	return nil
}

type deliverFunc func(kind protocol.IncomingKind, client, server string) (*yamux.Stream, error)

// stealWhole hands a whole stolen connection to the session.
func stealWhole(c net.Conn, orig netip.AddrPort, deliver deliverFunc) {
	defer c.Close()
	s, err := deliver(protocol.IncomingConn, steal.ClientOf(c), orig.String())
	if err != nil {
		return
	}
	defer s.Close()
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = protocol.Copy(s, c)
		_ = s.Close()
	})
	_, _ = protocol.Copy(c, s)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	wg.Wait()
}

// requestRelay answers the matched requests of one client connection through the session.
// HTTP/1 requests come one at a time: they share one stream, request after response, so a
// keep-alive client costs one stream, not one per request (a stream open and its header at
// every hop). Concurrent requests (h2c) get a stream each.
type requestRelay struct {
	// conn is the client connection; its caller is read per request (steal.ClientOf): an
	// earlier slot that passed it on has registered its caller by the time a request of it
	// has arrived, though maybe not yet when it was accepted.
	conn    net.Conn
	orig    string
	deliver deliverFunc

	mu   sync.Mutex
	idle *relayStream
}

type relayStream struct {
	s *yamux.Stream
	r *bufio.Reader
}

func (rr *requestRelay) roundTrip(r *http.Request) (*http.Response, error) {
	// A request without a body can be sent again: it may try the idle stream, which the
	// session may have closed meanwhile.
	bodiless := r.ContentLength == 0 && (r.Body == nil || r.Body == http.NoBody)
	if bodiless {
		rr.mu.Lock()
		rs := rr.idle
		rr.idle = nil
		rr.mu.Unlock()
		if rs != nil {
			if resp, err := rr.send(rs, r); err == nil {
				return resp, nil
			}
		}
	}
	s, err := rr.deliver(protocol.IncomingRequest, steal.ClientOf(rr.conn), rr.orig)
	if err != nil {
		return nil, err
	}
	return rr.send(&relayStream{s: s, r: bufio.NewReader(s)}, r)
}

// expectContinueWait is how long a request that expects 100 Continue waits for the session's
// word before its body is sent anyway (net/http's Transport waits the same for a server).
const expectContinueWait = time.Second

// send writes r on the stream and reads the session's answer: 1xx answers are passed to the
// client as they come (httptrace's Got1xxResponse, which the reverse proxy serving the
// client listens to), a 101 turns the stream into the upgraded connection, and the final
// answer is returned. The body is sent while the answer is read, after the session's 100
// Continue when the client expects one, and what the client sent so far always reaches the
// session at once.
func (rr *requestRelay) send(rs *relayStream, r *http.Request) (*http.Response, error) {
	bw, release := protocol.MessageWriter(rs.s)
	out := *r
	var gate *continueGate
	if r.Body != nil && r.Body != http.NoBody {
		gate = newContinueGate(strings.EqualFold(r.Header.Get("Expect"), "100-continue"))
		out.Body = &sentBody{ReadCloser: r.Body, flush: bw.Flush, gate: gate}
	}
	written := make(chan error, 1)
	write := func() {
		err := out.Write(bw)
		if err == nil {
			err = bw.Flush()
		}
		release() // the body's reads flush through bw: only now is it done with
		written <- err
	}
	if gate == nil {
		write() // no body: nothing to wait for, and the stream is free again with the answer
	} else {
		go write()
	}
	fail := func(err error) (*http.Response, error) {
		gate.close()
		rs.s.Close()
		return nil, err
	}
	for {
		resp, err := http.ReadResponse(rs.r, r)
		if err != nil {
			return fail(fmt.Errorf("the session's answer: %w", err))
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			if trace := httptrace.ContextClientTrace(r.Context()); trace != nil && trace.Got1xxResponse != nil {
				if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
					return fail(err)
				}
			}
			if resp.StatusCode == http.StatusContinue {
				gate.open()
			}
			continue
		}
		gate.close() // a final answer: a body not sent yet never will be
		if resp.StatusCode == http.StatusSwitchingProtocols {
			// The stream is now the upgraded connection (the reverse proxy tunnels it).
			resp.Body = &upgradedStream{Reader: rs.r, s: rs.s}
			return resp, nil
		}
		// The stream carries the next request only once this one was sent whole.
		reusable := !resp.Close && !r.Close && (gate == nil || !gate.refused())
		resp.Body = &streamBody{ReadCloser: resp.Body, rs: rs, rr: rr, reusable: reusable, written: written}
		return resp, nil
	}
}

// continueGate holds a request's body until the session says 100 Continue (or a second
// passed) when the client expects that, and shuts it when a final answer came first.
type continueGate struct {
	once   sync.Once
	opened chan struct{}
	mu     sync.Mutex
	shut   bool // a final answer came before the body was let through
}

func newContinueGate(expect bool) *continueGate {
	g := &continueGate{opened: make(chan struct{})}
	if !expect {
		g.open()
	}
	return g
}

func (g *continueGate) open() {
	if g != nil {
		g.once.Do(func() { close(g.opened) })
	}
}

// close shuts a gate not opened yet, and opens it (so the writer is not left waiting).
func (g *continueGate) close() {
	if g == nil {
		return
	}
	g.mu.Lock()
	select {
	case <-g.opened:
	default:
		g.shut = true
	}
	g.mu.Unlock()
	g.open()
}

// wait lets the body through: false when it must not be sent.
func (g *continueGate) wait() bool {
	select {
	case <-g.opened:
	case <-time.After(expectContinueWait):
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.shut
}

// refused says the body was held back: the stream was left mid-request.
func (g *continueGate) refused() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.shut
}

// sentBody is a request body on its way to the session: held at the gate before its first
// byte, and everything read of it flushed before the client is asked for more.
type sentBody struct {
	io.ReadCloser
	flush   func() error
	gate    *continueGate
	started bool
}

var errBodyRefused = errors.New("the session answered before the request's body was sent")

func (b *sentBody) Read(p []byte) (int, error) {
	if err := b.flush(); err != nil {
		return 0, err
	}
	if !b.started {
		b.started = true
		if !b.gate.wait() {
			return 0, errBodyRefused
		}
	}
	return b.ReadCloser.Read(p)
}

// upgradedStream is a stream after a 101: what the reader buffered, then the stream.
type upgradedStream struct {
	io.Reader
	s *yamux.Stream
}

func (u *upgradedStream) Write(p []byte) (int, error) { return u.s.Write(p) }
func (u *upgradedStream) Close() error                { return u.s.Close() }

// close ends the idle stream when the client connection is done.
func (rr *requestRelay) close() {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if rr.idle != nil {
		rr.idle.s.Close()
		rr.idle = nil
	}
}

// streamBody gives the stream back for the next request once the response is read to its
// end, and closes it otherwise.
type streamBody struct {
	io.ReadCloser
	rs       *relayStream
	rr       *requestRelay
	reusable bool
	written  <-chan error // the request's end on the stream
	done     bool
	closed   bool // Response.Write closes the body, and its caller again
}

// sentWhole says the request was written to its end without error, without waiting: one
// still being written (its client still sending after the answer) leaves the stream unusable.
func sentWhole(written <-chan error) bool {
	select {
	case err := <-written:
		return err == nil
	default:
		return false
	}
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.done = true
	}
	return n, err
}

func (b *streamBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	err := b.ReadCloser.Close()
	if !b.reusable || !b.done || !sentWhole(b.written) {
		b.rs.s.Close()
		return err
	}
	b.rr.mu.Lock()
	defer b.rr.mu.Unlock()
	if b.rr.idle != nil {
		b.rs.s.Close() // one idle stream is enough
		return err
	}
	b.rr.idle = b.rs
	return err
}
