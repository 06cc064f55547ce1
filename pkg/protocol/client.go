package protocol

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

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
type Client struct{ sess *yamux.Session }

// NewClient wraps a session from Dial.
func NewClient(sess *yamux.Session) *Client { return &Client{sess: sess} }

// Close ends the session.
func (c *Client) Close() error { return c.sess.Close() }

// open starts an operation and reads its first Response; the stream stays open.
func (c *Client) open(req Request) (*yamux.Stream, Response, error) {
	if err := req.Validate(); err != nil {
		return nil, Response{}, err
	}
	st, err := c.sess.OpenStream()
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
	control *yamux.Stream
	sess    *yamux.Session
}

// Subscribe starts receiving incoming traffic. A session connection carries at most one
// subscription: every stream the peer opens on it is a delivery.
func (c *Client) Subscribe() (*Subscription, error) {
	st, _, err := c.open(Request{Op: OpIncoming})
	if err != nil {
		return nil, err
	}
	return &Subscription{control: st, sess: c.sess}, nil
}

// Accept waits for the next delivery: its header, and the stream that carries it.
func (s *Subscription) Accept() (Incoming, net.Conn, error) {
	st, err := s.sess.AcceptStream()
	if err != nil {
		return Incoming{}, nil, err
	}
	var in Incoming
	if err := ReadMessage(st, &in); err != nil {
		st.Close()
		return in, nil, err
	}
	return in, st, nil
}

// Close ends the subscription: the agent stops intercepting.
func (s *Subscription) Close() error { return s.control.Close() }
