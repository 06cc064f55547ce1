package mirror

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// connBufferLimit is how far a mirrored connection's reader may fall behind the capture.
const connBufferLimit = 4 << 20

// ErrFellBehind ends a mirrored connection whose reader fell connBufferLimit behind: the
// rest of it is dropped so the capture, shared by every connection, never waits.
var ErrFellBehind = errors.New("mirror: the session fell more than 4 MiB behind this connection; the rest of it is dropped")

// MaxBufferedBytes bounds what every mirrored connection's buffer holds altogether (the
// capture's copy and each session's): a connection whose bytes would go beyond loses the
// rest of them (ErrBuffersFull), as one that falls behind does, whoever sends the traffic.
const MaxBufferedBytes = 64 << 20

// ErrBuffersFull ends a mirrored connection when the agent's mirror buffers are full.
var ErrBuffersFull = errors.New("mirror: the agent's mirror buffers are full (64 MiB): the rest of this connection is dropped")

// buffered is what every connBuffer holds, against MaxBufferedBytes.
var buffered atomic.Int64

// connBuffer carries one mirrored connection's bytes from the capture to its handler. Writes
// never block (the capture goroutine serves every connection of an interface); a reader
// that falls too far behind loses the connection instead.
type connBuffer struct {
	mu     sync.Mutex
	ready  sync.Cond
	data   []byte
	closed bool
	err    error // after the data: io.EOF, or ErrFellBehind
}

func newConnBuffer() *connBuffer {
	b := &connBuffer{}
	b.ready.L = &b.mu
	return b
}

// write appends p, or ends the connection with ErrFellBehind when the reader is too far
// behind.
func (b *connBuffer) write(p []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	switch {
	case len(b.data)+len(p) > connBufferLimit:
		b.drop(ErrFellBehind)
	case buffered.Add(int64(len(p))) > MaxBufferedBytes:
		buffered.Add(-int64(len(p)))
		protocol.CountLimitHit(protocol.LimitMirrorBytes)
		b.drop(ErrBuffersFull)
	default:
		b.data = append(b.data, p...)
	}
	b.ready.Broadcast()
}

// drop ends the connection with err, giving back what it held.
func (b *connBuffer) drop(err error) {
	buffered.Add(-int64(len(b.data)))
	b.closed, b.err, b.data = true, err, nil
}

// close ends the connection once the reader has what was written.
func (b *connBuffer) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed, b.err = true, io.EOF
	}
	b.ready.Broadcast()
}

// end ends b after what was written with err: io.EOF, or the capture's ErrFellBehind.
func (b *connBuffer) end(err error) {
	if errors.Is(err, io.EOF) {
		b.close()
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.drop(err)
	}
	b.ready.Broadcast()
}

func (b *connBuffer) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.data) == 0 && !b.closed {
		b.ready.Wait()
	}
	if len(b.data) > 0 {
		n := copy(p, b.data)
		b.data = b.data[n:]
		buffered.Add(-int64(n))
		if len(b.data) == 0 {
			b.data = nil // let a large burst's array go
		}
		return n, nil
	}
	return 0, b.err
}
