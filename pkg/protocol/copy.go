package protocol

import (
	"bufio"
	"io"
	"net"
	"sync"
)

// Copy buffers. A large one pays off for bulk data: every hop of a session (netstack, relays,
// agent) moves data in chunks of what one Read returns, and each chunk is a frame, a syscall
// and a wakeup at every hop after it (a stream's 1 MiB window holds four 256 KiB chunks).
// But most copies carry a request or two (a mirrored connection, a DNS query) and a relay
// holds thousands at once: those stay on a small buffer. A copy moves to the large buffer
// the first time a Read fills the small one.
const (
	smallCopyBuffer = 16 << 10
	largeCopyBuffer = 256 << 10
)

var (
	smallBuffers = sync.Pool{New: func() any { b := make([]byte, smallCopyBuffer); return &b }}
	largeBuffers = sync.Pool{New: func() any { b := make([]byte, largeCopyBuffer); return &b }}
)

// messageBuffer is the size of the writer an HTTP/1 request or answer is written into before
// it goes on a stream (WriteBuffered): a message and the start of its body in one frame.
const messageBuffer = 64 << 10

// messageWriters are pooled: one is taken for every request a session carries, and a fresh
// 64 KiB buffer each time cost more CPU (zeroing, and the collections it set off) than
// everything else the agent and the CLI do for a request.
var messageWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, messageBuffer) }}

// MessageWriter returns a pooled buffered writer to w; release gives it back once it is no
// longer used (flushed or abandoned), and must be called once.
func MessageWriter(w io.Writer) (bw *bufio.Writer, release func()) {
	bw = messageWriters.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw, func() {
		bw.Reset(nil) // hold no reference to w
		messageWriters.Put(bw)
	}
}

// Copy is io.Copy with pooled buffers that grow with the traffic, used for every byte a
// session relays. It never uses ReaderFrom/WriterTo (a TCP connection's ReadFrom would
// copy from a stream 32 KiB at a time).
func Copy(dst io.Writer, src io.Reader) (written int64, err error) {
	small := smallBuffers.Get().(*[]byte)
	defer smallBuffers.Put(small)
	var large *[]byte
	defer func() {
		if large != nil {
			largeBuffers.Put(large)
		}
	}()
	buf := *small
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			written += int64(w)
			if werr != nil {
				return written, werr
			}
			if w != n {
				return written, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
		if n == len(buf) && large == nil {
			large = largeBuffers.Get().(*[]byte)
			buf = *large
		}
	}
}

// Splice copies both ways between a and b until both directions end: each side's EOF
// half-closes the other (or closes it, where it cannot half-close). Both are closed after.
func Splice(a, b net.Conn) {
	var wg sync.WaitGroup
	half := func(dst, src net.Conn) {
		_, _ = Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Go(func() { half(b, a) })
	half(a, b)
	wg.Wait()
	a.Close()
	b.Close()
}
