package relayserver

import (
	"net"
	"net/http"
	"sync"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// limitPending bounds the relay's connections that have not been upgraded yet (in their TLS
// handshake, sending their request, or idle between requests): nobody on them has proved
// anything, so any pod could otherwise hold as many as it likes, for the server's timeouts
// each. A connection beyond max is closed as it arrives and counted (protocol.LimitHits).
// Upgraded connections leave the count: the handshake limit and the session's own take over.
// It returns the http.Server's ConnState hook.
func limitPending(max int) func(net.Conn, http.ConnState) {
	pending := protocol.NewLimit(protocol.LimitPendingConns, max, "too many relay connections not yet upgraded")
	var releases sync.Map // net.Conn → release func()
	return func(c net.Conn, state http.ConnState) {
		switch state {
		case http.StateNew:
			release, err := pending.Acquire()
			if err != nil {
				_ = c.Close()
				return
			}
			releases.Store(c, release)
		case http.StateHijacked, http.StateClosed:
			if release, ok := releases.LoadAndDelete(c); ok {
				release.(func())()
			}
		}
	}
}
