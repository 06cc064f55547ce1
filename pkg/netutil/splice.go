// Package netutil holds the one way every hop joins two connections.
package netutil

import (
	"io"
	"net"
	"sync"
)

// Splice copies a to b and b to a until both directions end. When one side's reader ends,
// the other side's writer is half-closed (CloseWrite, or Close for connections whose Close
// is a half-close, like yamux streams), so each peer sees the end of what it was sent. The
// caller closes both afterwards.
func Splice(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() { copyHalfClose(b, a) })
	copyHalfClose(a, b)
	wg.Wait()
}

type closeWriter interface{ CloseWrite() error }

func copyHalfClose(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	if cw, ok := dst.(closeWriter); ok {
		_ = cw.CloseWrite()
	} else {
		_ = dst.Close()
	}
}
