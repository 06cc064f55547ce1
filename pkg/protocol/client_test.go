package protocol

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// reconnectServer is a session peer on loopback that answers env and, on every connection
// that subscribes, delivers one stream per value sent on deliver.
type reconnectServer struct {
	t       *testing.T
	ln      net.Listener
	deliver chan string

	mu    sync.Mutex
	conns []net.Conn
}

func newReconnectServer(t *testing.T) *reconnectServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &reconnectServer{t: t, ln: ln, deliver: make(chan string)}
	t.Cleanup(func() { ln.Close(); s.drop() })
	go s.serve()
	return s
}

func (s *reconnectServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		go func() {
			_, sess, err := Accept(c, nil)
			if err != nil {
				return
			}
			for {
				st, err := sess.AcceptStream()
				if err != nil {
					return
				}
				go s.op(sess, st)
			}
		}()
	}
}

func (s *reconnectServer) op(sess *yamux.Session, st *yamux.Stream) {
	var req Request
	if ReadMessage(st, &req) != nil {
		return
	}
	switch req.Op {
	case OpEnv:
		_ = WriteMessage(st, Response{Env: map[string]string{"K": "v"}})
		st.Close()
	case OpIncoming:
		_ = WriteMessage(st, Response{})
		for {
			select {
			case path := <-s.deliver:
				d, err := sess.OpenStream()
				if err != nil {
					// This connection died with a value in hand: give it to the next.
					go func() { s.deliver <- path }()
					return
				}
				_ = WriteMessage(d, Incoming{Kind: IncomingMirror, Client: "10.0.0.1:1", Server: "10.0.0.2:80"})
				_, _ = d.Write([]byte(path))
				d.Close()
			case <-sess.CloseChan():
				return
			}
		}
	}
}

// drop closes every connection the server accepted, as a network failure would.
func (s *reconnectServer) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

func (s *reconnectServer) dial(ctx context.Context) (*yamux.Session, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.ln.Addr().String())
	if err != nil {
		return nil, err
	}
	return Dial(c, Hello{Kind: HelloSession, Session: "ns/s"}, nil)
}

func TestReconnectingClientSurvivesADrop(t *testing.T) {
	srv := newReconnectServer(t)
	sess, err := srv.dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan ConnEvent, 10)
	c := NewReconnectingClient(sess, srv.dial, func(e ConnEvent) { events <- e })
	defer c.Close()
	sub, err := c.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	accept := func(want string) {
		t.Helper()
		go func() { srv.deliver <- want }()
		_, conn, err := sub.Accept()
		if err != nil {
			t.Fatalf("accept %s: %v", want, err)
		}
		got, _ := io.ReadAll(conn)
		if string(got) != want {
			t.Fatalf("delivery %q, want %q", got, want)
		}
	}
	accept("/before")

	srv.drop()
	if e := <-events; e.Err == nil {
		t.Fatalf("first event %+v, want the loss", e)
	}
	// An operation started while reconnecting waits for the new connection.
	if env, err := c.Env(); err != nil || env["K"] != "v" {
		t.Fatalf("env after the drop: %v %v", env, err)
	}
	if e := <-events; e.Err != nil {
		t.Fatalf("second event %+v, want the recovery", e)
	}
	// The subscription carries on on the new connection.
	accept("/after")

	c.Close()
	if _, err := c.Env(); !errors.Is(err, ErrClosed) {
		t.Errorf("env after Close: %v, want ErrClosed", err)
	}
	done := make(chan error, 1)
	go func() { _, _, err := sub.Accept(); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("accept after Close succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Error("accept did not end with the client")
	}
}

func TestPlainClientEndsWithItsConnection(t *testing.T) {
	srv := newReconnectServer(t)
	sess, err := srv.dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(sess)
	sub, err := c.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	srv.drop()
	if _, _, err := sub.Accept(); err == nil {
		t.Error("a plain client's subscription outlived its connection")
	}
	if _, err := c.Env(); err == nil {
		t.Error("a plain client ran an operation after its connection dropped")
	}
}
