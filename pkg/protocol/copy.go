package protocol

import (
	"io"
	"sync"
)

// copyBufferSize is large: every hop of a session (netstack, relays, agent) moves bulk data
// in chunks of what one Read returns, and each chunk is a frame, a syscall and a wakeup at
// every hop after it. A stream's window (1 MiB) holds four.
const copyBufferSize = 256 << 10

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// Copy is io.Copy with a large pooled buffer, used for every byte a session relays. It hides
// ReaderFrom/WriterTo so the large buffer is used (a TCP connection's ReadFrom would copy
// from a stream 32 KiB at a time).
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
}
