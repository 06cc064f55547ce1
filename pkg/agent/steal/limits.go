package steal

import (
	"errors"
	"net"
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
	// BodyTimeout is the longest a request's body may take to arrive when a body filter
	// reads it (at most httpfilter.MaxBody of it) to route the request.
	BodyTimeout = 10 * time.Second
	// IdleTimeout is the longest a stolen connection may wait for its next request (or its
	// first): a client that connects and says nothing does not hold the agent forever.
	IdleTimeout = 2 * time.Minute
)

// isTimeout reports a read that passed its deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
