package protocol

import (
	"bytes"
	"io"
	"net"
	"runtime"
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

// TestCopyGrowsItsBuffer: short copies stay on the small buffer, bulk moves to the large one,
// and every byte arrives in order either way.
func TestCopyGrowsItsBuffer(t *testing.T) {
	for _, size := range []int{0, 100, smallCopyBuffer, smallCopyBuffer + 1, 3*largeCopyBuffer + 17} {
		src := make([]byte, size)
		for i := range src {
			src[i] = byte(i * 7)
		}
		var dst bytes.Buffer
		reads := &countingReader{r: bytes.NewReader(src)}
		n, err := Copy(&dst, reads)
		if err != nil || n != int64(size) || !bytes.Equal(dst.Bytes(), src) {
			t.Fatalf("size %d: copied %d, %v; equal %v", size, n, err, bytes.Equal(dst.Bytes(), src))
		}
		if size > 2*largeCopyBuffer && reads.max != largeCopyBuffer {
			t.Errorf("size %d: largest read %d, want the large buffer (%d)", size, reads.max, largeCopyBuffer)
		}
		if size <= 100 && reads.max > smallCopyBuffer {
			t.Errorf("size %d: read with %d bytes, want the small buffer", size, reads.max)
		}
	}
}

type countingReader struct {
	r   io.Reader
	max int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.max = max(c.max, len(p))
	return c.r.Read(p)
}

// TestWriteBufferedReusesItsBuffer: every stolen request is written through WriteBuffered at
// least twice, and a fresh 64 KiB buffer each time was most of the CLI's CPU per request.
func TestWriteBufferedReusesItsBuffer(t *testing.T) {
	write := func(w io.Writer) error { _, err := io.WriteString(w, "HTTP/1.1 204 No Content\r\n\r\n"); return err }
	_ = WriteBuffered(io.Discard, write)
	const n = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		if err := WriteBuffered(io.Discard, write); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 1<<10 {
		t.Errorf("WriteBuffered allocates %d bytes per call: its buffer is not reused", per)
	}
}
