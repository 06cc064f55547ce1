package protocol

import (
	"io"
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
