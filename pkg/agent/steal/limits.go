package steal

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// Limits on what any client of a stolen port may send before its request is routed. Any pod
// that can reach the target can reach them, so none may grow the agent without bound.
const (
	// MaxHeaderBytes bounds a request's line and headers, as net/http's default.
	MaxHeaderBytes = 1 << 20
	// readBuffer is the read buffer of a stolen connection.
	readBuffer = 64 << 10
)

var (
	// HeaderTimeout is the longest a request's headers may take once its first byte came.
	HeaderTimeout = 10 * time.Second
	// IdleTimeout is the longest a stolen connection may wait for its next request (or its
	// first): a client that connects and says nothing does not hold the agent forever.
	IdleTimeout = 2 * time.Minute
)

// errHeaderTooLarge is a request whose headers passed MaxHeaderBytes.
var errHeaderTooLarge = errors.New("request headers larger than the agent allows")

// readLimit reads from r, at most n more bytes while limited, so a reader on top of it
// (bufio and http.ReadRequest, which buffer a header line whole) cannot be made to grow.
type readLimit struct {
	r io.Reader
	n atomic.Int64 // bytes left; < 0: no limit
}

func newReadLimit(r io.Reader) *readLimit {
	l := &readLimit{r: r}
	l.n.Store(-1)
	return l
}

// limit allows n more bytes; a negative n lifts the limit.
func (l *readLimit) limit(n int64) { l.n.Store(n) }

func (l *readLimit) Read(p []byte) (int, error) {
	left := l.n.Load()
	if left == 0 {
		return 0, errHeaderTooLarge
	}
	if left > 0 && int64(len(p)) > left {
		p = p[:left]
	}
	n, err := l.r.Read(p)
	if left > 0 {
		l.n.Add(-int64(n))
	}
	return n, err
}

// isTimeout reports a read that passed its deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
