package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
)

// RemoteError is an operation's failure at the peer.
type RemoteError struct {
	Msg   string
	Errno syscall.Errno // 0 when none fits
}

func (e *RemoteError) Error() string { return e.Msg }

// Is lets errors.Is(err, fs.ErrNotExist) and friends work on the errno.
func (e *RemoteError) Is(target error) bool { return e.Errno != 0 && e.Errno.Is(target) }

// Unwrap exposes the errno.
func (e *RemoteError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

func remote(r Response) error {
	if r.Error == "" {
		return nil
	}
	return &RemoteError{Msg: r.Error, Errno: syscall.Errno(r.Errno)}
}

// Client runs operations on a session, one stream each.
//
// A client made by NewReconnectingClient outlives its connection: when the connection drops
// (a laptop changing networks, the Primary's controller restarting), it dials again with
// backoff until Close, operations started meanwhile wait a little for it, and the
// subscription carries on on the new connection. Streams open at the drop fail: the
// connections and files they carried are reset, as after a real network failure.
type Client struct {
	redial func(context.Context) (*yamux.Session, error)
	events func(ConnEvent)

	ctx    context.Context // ends at Close
	cancel context.CancelFunc

	mu   sync.Mutex
	sess *yamux.Session // nil while reconnecting
	// changed is closed (and replaced) whenever sess changes or the client closes.
	changed chan struct{}
}

// ConnEvent reports a reconnecting client's connection lost (Err set) or restored (Down is how
// long it was down).
type ConnEvent struct {
	Err  error
	Down time.Duration
}

// reconnectWait is how long an operation waits for a lost connection to come back.
const reconnectWait = 5 * time.Second

// ErrClosed is an operation on a closed client.
var ErrClosed = errors.New("the session connection is closed")

// NewClient wraps a session from Dial; the client ends with it.
func NewClient(sess *yamux.Session) *Client {
	return newClient(sess, nil, nil)
}

// NewReconnectingClient wraps sess and, whenever the connection behind it drops, dials a new
// one with redial until Close. events (optional) hears of each loss and recovery.
func NewReconnectingClient(sess *yamux.Session, redial func(context.Context) (*yamux.Session, error), events func(ConnEvent)) *Client {
	return newClient(sess, redial, events)
}

func newClient(sess *yamux.Session, redial func(context.Context) (*yamux.Session, error), events func(ConnEvent)) *Client {
	c := &Client{redial: redial, events: events, sess: sess, changed: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if redial != nil {
		go c.keepConnected(sess)
	}
	return c
}

// Close ends the session.
func (c *Client) Close() error {
	c.cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.notifyLocked()
	if c.sess == nil {
		return nil
	}
	return c.sess.Close()
}

func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// keepConnected redials every time the current connection ends, until Close.
func (c *Client) keepConnected(sess *yamux.Session) {
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-sess.CloseChan():
		}
		lost := time.Now()
		c.mu.Lock()
		c.sess = nil
		c.notifyLocked()
		c.mu.Unlock()
		if c.events != nil {
			c.events(ConnEvent{Err: errors.New("the connection to the session dropped")})
		}
		backoff := 250 * time.Millisecond
		for {
			next, err := c.redial(c.ctx)
			if err == nil {
				sess = next
				break
			}
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 4*time.Second)
		}
		c.mu.Lock()
		if c.ctx.Err() != nil {
			c.mu.Unlock()
			sess.Close()
			return
		}
		c.sess = sess
		c.notifyLocked()
		c.mu.Unlock()
		if c.events != nil {
			c.events(ConnEvent{Down: time.Since(lost)})
		}
	}
}

// session is the current connection, waiting up to wait for one while reconnecting.
func (c *Client) session(wait time.Duration) (*yamux.Session, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		sess, changed := c.sess, c.changed
		c.mu.Unlock()
		switch {
		case c.ctx.Err() != nil:
			return nil, ErrClosed
		case sess != nil && (c.redial == nil || !sess.IsClosed()):
			return sess, nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, errors.New("the connection to the session dropped; reconnecting")
		case <-c.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// open starts an operation and reads its first Response; the stream stays open.
func (c *Client) open(req Request) (*yamux.Stream, Response, error) {
	if err := req.Validate(); err != nil {
		return nil, Response{}, err
	}
	sess, err := c.session(reconnectWait)
	if err != nil {
		return nil, Response{}, err
	}
	return openOn(sess, req)
}

func openOn(sess *yamux.Session, req Request) (*yamux.Stream, Response, error) {
	st, err := sess.OpenStream()
	if err != nil {
		return nil, Response{}, fmt.Errorf("opening a stream: %w", err)
	}
	if err := WriteMessage(st, req); err != nil {
		st.Close()
		return nil, Response{}, err
	}
	var resp Response
	if err := ReadMessage(st, &resp); err != nil {
		st.Close()
		return nil, Response{}, fmt.Errorf("%s: %w", req.Op, err)
	}
	if err := remote(resp); err != nil {
		st.Close()
		return nil, resp, err
	}
	return st, resp, nil
}

// Do runs a one-answer operation.
func (c *Client) Do(req Request) (Response, error) {
	st, resp, err := c.open(req)
	if err != nil {
		return resp, err
	}
	st.Close()
	return resp, nil
}

// Env is the target's environment, filtered as the session says.
func (c *Client) Env() (map[string]string, error) {
	r, err := c.Do(Request{Op: OpEnv})
	return r.Env, err
}

// File is a file open in the target.
type File struct{ st *yamux.Stream }

// Open opens path in the target with open(2) flags.
func (c *Client) Open(path string, flags int, mode uint32) (*File, error) {
	st, _, err := c.open(Request{Op: OpOpen, Path: path, Flags: flags, Mode: mode})
	if err != nil {
		return nil, err
	}
	return &File{st: st}, nil
}

func (f *File) do(op FileOp) (Response, error) {
	if err := WriteMessage(f.st, op); err != nil {
		return Response{}, err
	}
	var r Response
	if err := ReadMessage(f.st, &r); err != nil {
		return r, err
	}
	return r, remote(r)
}

// ReadAt reads up to len(p) bytes at off (io.EOF when fewer remain).
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		want := min(len(p)-n, MaxRead)
		r, err := f.do(FileOp{Op: "read", Offset: off + int64(n), Length: want})
		if err != nil {
			return n, err
		}
		n += copy(p[n:], r.Data)
		if len(r.Data) < want {
			return n, io.EOF
		}
	}
	return n, nil
}

// WriteAt writes p at off.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	r, err := f.do(FileOp{Op: "write", Offset: off, Data: p})
	return r.N, err
}

// Stat is fstat(2) of the open file.
func (f *File) Stat() (*Stat, error) {
	r, err := f.do(FileOp{Op: "stat"})
	return r.Stat, err
}

// Close closes the file in the target.
func (f *File) Close() error { return f.st.Close() }

// Dial connects from the target's network: a TCP connection's bytes, or for UDP a
// net.Conn whose every Write is one datagram.
func (c *Client) Dial(network, address string) (net.Conn, error) {
	st, _, err := c.open(Request{Op: OpDial, Network: network, Address: address})
	if err != nil {
		return nil, err
	}
	if network == "udp" {
		return &datagramConn{Stream: st}, nil
	}
	return st, nil
}

// datagramConn frames datagrams on a stream.
type datagramConn struct{ *yamux.Stream }

func (d *datagramConn) Write(p []byte) (int, error) {
	if len(p) > 65535 {
		return 0, errors.New("datagram larger than 65535 bytes")
	}
	_, err := d.Stream.Write(append([]byte{byte(len(p) >> 8), byte(len(p))}, p...))
	return len(p), err
}

func (d *datagramConn) Read(p []byte) (int, error) {
	var l [2]byte
	if _, err := io.ReadFull(d.Stream, l[:]); err != nil {
		return 0, err
	}
	buf := make([]byte, int(l[0])<<8|int(l[1]))
	if _, err := io.ReadFull(d.Stream, buf); err != nil {
		return 0, err
	}
	return copy(p, buf), nil
}

// Subscription receives the target's incoming traffic, as the session's features say.
type Subscription struct {
	c *Client

	mu      sync.Mutex
	control *yamux.Stream
	sess    *yamux.Session
	closed  bool
}

// Subscribe starts receiving incoming traffic. A session connection carries at most one
// subscription: every stream the peer opens on it is a delivery. On a reconnecting client
// the subscription is renewed on every new connection.
func (c *Client) Subscribe() (*Subscription, error) {
	sess, err := c.session(reconnectWait)
	if err != nil {
		return nil, err
	}
	st, _, err := openOn(sess, Request{Op: OpIncoming})
	if err != nil {
		return nil, err
	}
	return &Subscription{c: c, control: st, sess: sess}, nil
}

// Accept waits for the next delivery: its header, and the stream that carries it.
func (s *Subscription) Accept() (Incoming, net.Conn, error) {
	for {
		s.mu.Lock()
		sess := s.sess
		s.mu.Unlock()
		st, err := sess.AcceptStream()
		if err != nil {
			if err := s.renew(err); err != nil {
				return Incoming{}, nil, err
			}
			continue
		}
		var in Incoming
		if err := ReadMessage(st, &in); err != nil {
			// One bad delivery is that delivery's problem, not the subscription's.
			st.Close()
			if sess.IsClosed() {
				continue
			}
			return in, nil, err
		}
		return in, st, nil
	}
}

// renew subscribes again on the client's next connection after the last one failed with
// err; it returns err when there is no next connection (a plain client, Close, or the
// subscription closed).
func (s *Subscription) renew(err error) error {
	if s.c.redial == nil {
		return err
	}
	for {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return err
		}
		// session never returns a closed connection to a reconnecting client.
		sess, serr := s.c.session(time.Minute)
		if errors.Is(serr, ErrClosed) {
			return err
		}
		if serr == nil {
			st, _, oerr := openOn(sess, Request{Op: OpIncoming})
			if oerr == nil {
				s.mu.Lock()
				s.control, s.sess = st, sess
				if s.closed {
					st.Close()
				}
				s.mu.Unlock()
				return nil
			}
			// The new connection could not subscribe yet (agents restarting): try again.
			select {
			case <-time.After(time.Second):
			case <-s.c.ctx.Done():
				return err
			}
		}
	}
}

// Close ends the subscription: the agent stops intercepting.
func (s *Subscription) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.control.Close()
}
