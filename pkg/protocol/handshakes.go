package protocol

import (
	"errors"
	"net"
	"sync/atomic"

	"github.com/hashicorp/yamux"
)

// MaxConcurrentHandshakes is how many handshakes a relay or an agent runs at once. Each holds
// a connection and a goroutine (for up to handshakeTimeout) before the peer has proved
// anything, so a flood of silent connections from any pod must not grow without bound; real
// handshakes take milliseconds, so this many never wait in practice.
const MaxConcurrentHandshakes = 64

// ErrBusy is a connection refused because MaxConcurrentHandshakes were running.
var ErrBusy = errors.New("protocol: too many handshakes at once (a flood of connections?): refused")

// Handshakes bounds the handshakes one server runs at once.
type Handshakes struct {
	slots   chan struct{}
	refused atomic.Int64
}

// NewHandshakes allows n handshakes at once.
func NewHandshakes(n int) *Handshakes {
	return &Handshakes{slots: make(chan struct{}, n)}
}

// Accept runs the server side of the handshake (Accept) within the limit (Run).
func (h *Handshakes) Accept(conn net.Conn, check func(h Hello, nonce []byte) error) (Hello, *yamux.Session, error) {
	return h.Run(conn, func() (Hello, *yamux.Session, error) { return Accept(conn, check) })
}

// Run runs handshake, the server side of a handshake on conn, if fewer than the limit are
// running; otherwise it closes conn at once and returns ErrBusy.
func (h *Handshakes) Run(conn net.Conn, handshake func() (Hello, *yamux.Session, error)) (Hello, *yamux.Session, error) {
	select {
	case h.slots <- struct{}{}:
	default:
		h.refused.Add(1)
		_ = conn.Close()
		return Hello{}, nil, ErrBusy
	}
	defer func() { <-h.slots }()
	return handshake()
}

// Refused counts the connections refused for being over the limit.
func (h *Handshakes) Refused() int64 { return h.refused.Load() }
