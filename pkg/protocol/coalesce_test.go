package protocol

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/yamux"
)

// countingConn counts the writes that reach the connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) { c.writes.Add(1); return c.Conn.Write(p) }

// A data frame is one write, and every byte arrives in order.
func TestCoalescedFramesArriveWhole(t *testing.T) {
	a, b := net.Pipe()
	counted := &countingConn{Conn: a}
	client, err := yamux.Client(coalesce(counted, counted), muxConfig())
	if err != nil {
		t.Fatal(err)
	}
	server, err := yamux.Server(b, muxConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	defer server.Close()

	payload := bytes.Repeat([]byte("0123456789abcdef"), 100<<10) // 1.6 MB: many frames, window updates between
	got := make(chan []byte, 1)
	go func() {
		st, err := server.AcceptStream()
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(st)
		got <- b
	}()
	st, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	before := counted.writes.Load()
	if _, err := st.Write([]byte("one small write")); err != nil {
		t.Fatal(err)
	}
	// Stream writes return once the send loop has written the frame.
	small := counted.writes.Load() - before
	if _, err := st.Write(payload); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if b := <-got; !bytes.Equal(b, append([]byte("one small write"), payload...)) {
		t.Fatalf("received %d bytes, not what was sent", len(b))
	}
	if small != 1 {
		t.Errorf("one data frame took %d writes, want 1 (header and body together)", small)
	}
}
