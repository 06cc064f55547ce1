// Package incoming delivers the target's incoming traffic to the sandboxed command: each
// mirrored connection, stolen connection or stolen HTTP request the session receives is
// dialled into the command's listening port (the same port, or port_mapping's), from the
// original client's address.
package incoming

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// Dialer connects into the command at dst, appearing to come from src.
type Dialer interface {
	DialIn(ctx context.Context, src, dst netip.AddrPort) (net.Conn, error)
}

// Deliverer delivers a subscription's traffic.
type Deliverer struct {
	Dialer Dialer
	// Target is the command's address (its port is replaced per delivery).
	Target netip.Addr
	// PortMapping maps a target port to the command's port.
	PortMapping map[uint16]uint16

	// Counts, for the progress line and tests.
	Mirrored, Stolen, Requests, Undelivered atomic.Int64

	mu   sync.Mutex
	idle map[string]*localConn // by client and command address
	// streams counts the request streams of each client connection (same key): when its
	// last one ends, the client connection has ended, and so does its connection into the
	// command (a single-threaded server serves the next client only then).
	streams map[string]int
}

// Serve delivers until the subscription ends.
func (d *Deliverer) Serve(ctx context.Context, sub *protocol.Subscription) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		in, st, err := sub.Accept()
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer st.Close()
			d.deliver(ctx, in, st)
		})
	}
}

func (d *Deliverer) deliver(ctx context.Context, in protocol.Incoming, st net.Conn) {
	server, err := netip.ParseAddrPort(in.Server)
	if err != nil {
		return
	}
	client, _ := netip.ParseAddrPort(in.Client)
	port := server.Port()
	if p, ok := d.PortMapping[port]; ok {
		port = p
	}
	dst := netip.AddrPortFrom(d.Target, port)
	if in.Kind == protocol.IncomingMirror {
		br := bufio.NewReader(st)
		if looksLikeHTTP1(br) {
			d.mirrorRequests(ctx, br, client, dst)
			_, _ = io.Copy(io.Discard, br)
			return
		}
		st = &bufferedConn{Conn: st, r: br}
	}
	if in.Kind == protocol.IncomingRequest {
		d.deliverRequests(ctx, st, client, dst)
		return
	}
	c, err := d.dialIn(ctx, client, dst)
	if err != nil {
		d.Undelivered.Add(1)
		klog.FromContext(ctx).V(2).Info("Not delivered", "kind", in.Kind, "port", port, "err", err)
		switch in.Kind {
		case protocol.IncomingMirror:
			_, _ = io.Copy(io.Discard, st)
		case protocol.IncomingRequest:
			msg := fmt.Sprintf("kubectl-mirrord: the local process does not accept connections on port %d (%v)\n", port, err)
			_, _ = fmt.Fprintf(st, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(msg), msg)
		}
		return
	}
	defer c.Close()
	switch in.Kind {
	case protocol.IncomingMirror:
		// A copy of a connection that is not HTTP/1: the command's answers go nowhere.
		d.Mirrored.Add(1)
		go func() { _, _ = io.Copy(io.Discard, c) }()
		_, _ = protocol.Copy(c, st)
	case protocol.IncomingConn:
		d.Stolen.Add(1)
		protocol.Splice(st, c)
	}
}

// idleTimeout is how long a connection into the command waits for the next stolen request
// of the same client connection.
const idleTimeout = 30 * time.Second

// localConn is a connection into the command kept between stolen requests of one client
// connection, so the command sees that client's keep-alive connection as one connection.
type localConn struct {
	net.Conn
	r     *bufio.Reader
	timer *time.Timer
}

// deliverRequests passes the stolen HTTP requests of a stream (and their answers), one by
// one, through the connection into the command that belongs to the same client connection,
// dialling one if there is none.
func (d *Deliverer) deliverRequests(ctx context.Context, st net.Conn, client, dst netip.AddrPort) {
	key := client.String() + ">" + dst.String()
	d.mu.Lock()
	if d.streams == nil {
		d.streams = map[string]int{}
	}
	d.streams[key]++
	d.mu.Unlock()
	defer d.streamEnded(key)
	br := bufio.NewReader(st)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if !d.deliverRequest(ctx, &bufferedConn{Conn: st, r: br}, req, client, dst) {
			return
		}
	}
}

// deliverRequest answers req on st (which reads through the stream's buffer); false means
// the stream can carry no more. The command's 1xx answers (100 Continue, 103 Early Hints)
// go back as they come, a 101 turns the stream into the upgraded connection, and the body is
// passed on while the answer is read, so a command that answers before reading it, or asks
// for it with 100 Continue, is served as it would be directly.
func (d *Deliverer) deliverRequest(ctx context.Context, st *bufferedConn, req *http.Request, client, dst netip.AddrPort) bool {
	key := client.String() + ">" + dst.String()
	hasBody := req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0
	for attempt := 0; attempt < 2; attempt++ {
		lc, reused := d.takeConn(key)
		if lc == nil {
			c, err := d.dialIn(ctx, client, dst)
			if err != nil {
				d.Undelivered.Add(1)
				msg := fmt.Sprintf("kubectl-mirrord: the local process does not accept connections on port %d (%v)\n", dst.Port(), err)
				_, _ = fmt.Fprintf(st, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(msg), msg)
				return false
			}
			lc = &localConn{Conn: c, r: bufio.NewReader(c)}
		}
		written := make(chan error, 1)
		write := func() { written <- protocol.WriteBuffered(lc, req.Write) }
		if !hasBody {
			write()
			if err := <-written; err != nil {
				lc.Close()
				if reused {
					continue // the command closed an idle connection: dial again
				}
				return false
			}
			written <- nil
		} else {
			go write()
		}
		resp, err := readFinal(lc.r, req, st)
		if err != nil {
			lc.Close()
			if reused && !hasBody && errors.Is(err, io.EOF) {
				continue
			}
			return false
		}
		d.Requests.Add(1)
		if resp.StatusCode == http.StatusSwitchingProtocols {
			// Both sides now speak the upgraded protocol, with what each reader buffered.
			if err := protocol.WriteBuffered(st, resp.Write); err != nil {
				lc.Close()
				return false
			}
			protocol.Splice(st, &bufferedConn{Conn: lc.Conn, r: lc.r})
			return false
		}
		werr := protocol.WriteBuffered(st, resp.Write)
		resp.Body.Close()
		if werr != nil || resp.Close || req.Close || !sentWhole(written) {
			lc.Close()
			return false
		}
		d.putConn(key, lc)
		return true
	}
	return false
}

// readFinal reads the command's answers to req until the final one, writing each 1xx answer
// to st as it comes.
func readFinal(r *bufio.Reader, req *http.Request, st io.Writer) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(r, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if err := protocol.WriteBuffered(st, resp.Write); err != nil {
			return nil, err
		}
	}
}

// sentWhole says the request was written to its end without error, without waiting: one
// still being written (the command answered before reading it all) leaves both
// connections mid-request.
func sentWhole(written <-chan error) bool {
	select {
	case err := <-written:
		return err == nil
	default:
		return false
	}
}

// listenPatience is how long a delivery waits for the command to listen on its port: the
// session's traffic flows from the moment the command starts, and a server takes a moment
// to listen (a request sent then would otherwise be lost, or answered 502).
const listenPatience = 3 * time.Second

// dialIn dials into the command from client; if that address is still taken by an earlier
// connection (TIME_WAIT), from the client's IP and another port. A refused connection is
// tried again for listenPatience.
func (d *Deliverer) dialIn(ctx context.Context, client, dst netip.AddrPort) (net.Conn, error) {
	deadline := time.Now().Add(listenPatience)
	for {
		c, err := d.Dialer.DialIn(ctx, client, dst)
		if err != nil && client.Port() != 0 && strings.Contains(err.Error(), "port is in use") {
			c, err = d.Dialer.DialIn(ctx, netip.AddrPortFrom(client.Addr(), 0), dst)
		}
		if err == nil || !strings.Contains(err.Error(), "refused") || time.Now().After(deadline) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// streamEnded closes the client's connection into the command when its last stream ended.
func (d *Deliverer) streamEnded(key string) {
	d.mu.Lock()
	d.streams[key]--
	last := d.streams[key] == 0
	if last {
		delete(d.streams, key)
	}
	d.mu.Unlock()
	if !last {
		return
	}
	if lc, _ := d.takeConn(key); lc != nil {
		lc.Close()
	}
}

func (d *Deliverer) takeConn(key string) (*localConn, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	lc := d.idle[key]
	if lc == nil {
		return nil, false
	}
	delete(d.idle, key)
	if !lc.timer.Stop() {
		return nil, false // being closed by its timer
	}
	return lc, true
}

func (d *Deliverer) putConn(key string, lc *localConn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.idle == nil {
		d.idle = map[string]*localConn{}
	}
	if old := d.idle[key]; old != nil {
		old.timer.Stop()
		old.Close()
	}
	d.idle[key] = lc
	lc.timer = time.AfterFunc(idleTimeout, func() {
		d.mu.Lock()
		if d.idle[key] == lc {
			delete(d.idle, key)
		}
		d.mu.Unlock()
		lc.Close()
	})
}

// looksLikeHTTP1 says whether a mirrored connection starts with an HTTP/1.x request line.
func looksLikeHTTP1(br *bufio.Reader) bool {
	b, _ := br.Peek(8)
	for _, m := range []string{"GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "PATCH ", "OPTIONS ", "CONNECT ", "TRACE "} {
		if strings.HasPrefix(string(b), m) || (len(b) < len(m) && strings.HasPrefix(m, string(b)) && len(b) > 0) {
			return true
		}
	}
	return false
}

// mirrorRequests replays a mirrored HTTP/1.x connection request by request: the local
// process may answer each on a new connection (many development servers close after every
// response), and none of its answers go anywhere.
func (d *Deliverer) mirrorRequests(ctx context.Context, br *bufio.Reader, client, dst netip.AddrPort) {
	// The client's address, but a port of the stack's choosing: a closed connection's
	// address pair stays in TIME_WAIT and cannot be dialled again at once.
	client = netip.AddrPortFrom(client.Addr(), 0)
	var c net.Conn
	var cr *bufio.Reader
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		delivered := false
		for attempt := 0; attempt < 2 && !delivered; attempt++ {
			if c == nil {
				if c, err = d.dialIn(ctx, client, dst); err != nil {
					c = nil
					break
				}
				cr = bufio.NewReader(c)
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			if err := req.Write(c); err == nil {
				if resp, err := readFinal(cr, req, io.Discard); err == nil {
					delivered = true
					// A mirrored upgrade is not followed: the copy ends with its 101.
					if resp.StatusCode == http.StatusSwitchingProtocols {
						return // the deferred close ends it
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if !resp.Close {
						continue
					}
				}
			}
			c.Close()
			c = nil
		}
		if delivered {
			d.Mirrored.Add(1)
		} else {
			d.Undelivered.Add(1)
		}
	}
}

// bufferedConn reads first what was peeked.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// CloseWrite half-closes the connection underneath, where it can.
func (b *bufferedConn) CloseWrite() error {
	if cw, ok := b.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return b.Conn.Close()
}

type closeWriter interface{ CloseWrite() error }

// ParsePortMapping reads "remote:local" pairs.
func ParsePortMapping(pairs []string) (map[uint16]uint16, error) {
	m := map[uint16]uint16{}
	for _, p := range pairs {
		r, l, ok := strings.Cut(p, ":")
		var rp, lp uint16
		if _, err := fmt.Sscan(r, &rp); !ok || err != nil || rp == 0 {
			return nil, fmt.Errorf("port mapping %q: want REMOTE:LOCAL, ports 1-65535", p)
		}
		if _, err := fmt.Sscan(l, &lp); err != nil || lp == 0 {
			return nil, fmt.Errorf("port mapping %q: want REMOTE:LOCAL, ports 1-65535", p)
		}
		m[rp] = lp
	}
	return m, nil
}
