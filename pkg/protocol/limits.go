package protocol

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// LimitName names a bound on what one peer may hold at once. Each is counted when hit
// (LimitHits), which the controller's and the agent's metrics expose as
// kubectl_mirrord_limit_hits_total{limit="NAME"}.
type LimitName string

// The bounds every relay and agent enforces on one authenticated peer.
const (
	// LimitStreams: streams open at once on one session's connection (operations, open
	// files, connections, deliveries waiting to be read), MaxStreamsPerConn.
	LimitStreams LimitName = "streams_per_connection"
	// LimitDials: connections one session is dialling from the target at once (each holds an
	// OS thread in the target's network namespace until it connects or times out),
	// MaxDialsPerSession.
	LimitDials LimitName = "dials_per_session"
	// LimitIncoming: incoming subscriptions one session holds on one agent at once (each
	// steal takes one of the target's MaxSlots), MaxIncomingPerSession.
	LimitIncoming LimitName = "incoming_per_session"
	// LimitMirrorConns: connections one agent mirrors at once (SYNs beyond are not
	// tracked), and LimitMirrorBytes: bytes its mirrored connections buffer altogether.
	LimitMirrorConns LimitName = "mirror_connections"
	LimitMirrorBytes LimitName = "mirror_buffered_bytes"
	// LimitPendingConns: connections a relay holds before they are upgraded (TLS
	// handshake, request, idle keep-alive), MaxPendingConns; any pod can open them.
	LimitPendingConns LimitName = "relay_pending_connections"
	// LimitStealHeaderBytes and LimitStealHeaderTime: a stolen HTTP/1 request whose line
	// and headers passed the steal's MaxHeaderBytes (answered 431) or HeaderTimeout (closed).
	LimitStealHeaderBytes LimitName = "steal_header_bytes"
	LimitStealHeaderTime  LimitName = "steal_header_time"
	// LimitStealBodyBytes and LimitStealBodyTime: a stolen request whose body a body filter
	// had to read was longer than httpfilter.MaxBody (not matched: it goes to the target) or
	// slower than the steal's BodyTimeout (answered 408).
	LimitStealBodyBytes LimitName = "steal_filter_body_bytes"
	LimitStealBodyTime  LimitName = "steal_filter_body_time"
)

// The values of the limits above.
const (
	MaxStreamsPerConn     = 4096
	MaxDialsPerSession    = 64
	MaxIncomingPerSession = 2 // one subscription, and its replacement while a member reconnects
	MaxPendingConns       = 256
)

// LimitNames lists every limit, for metrics.
var LimitNames = []LimitName{LimitStreams, LimitDials, LimitIncoming, LimitMirrorConns, LimitMirrorBytes, LimitPendingConns, LimitStealHeaderBytes, LimitStealHeaderTime, LimitStealBodyBytes, LimitStealBodyTime}

var limitHits = map[LimitName]*atomic.Int64{}

func init() {
	for _, n := range LimitNames {
		limitHits[n] = new(atomic.Int64)
	}
}

// CountLimitHit records that limit name was hit.
func CountLimitHit(name LimitName) { limitHits[name].Add(1) }

// LimitHits is how many times limit name was hit in this process.
func LimitHits(name LimitName) int64 { return limitHits[name].Load() }

// LimitError is an operation refused because its peer holds Max of Name already.
type LimitError struct {
	Name LimitName
	Max  int
	// Hint says what to do.
	Hint string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("limit %s (%d) reached: %s", e.Name, e.Max, e.Hint)
}

// Limit bounds how many of one thing a peer holds at once; it never waits.
type Limit struct {
	err   LimitError
	slots chan struct{}
}

// NewLimit allows max at once; hint goes into the error when the limit is hit.
func NewLimit(name LimitName, max int, hint string) *Limit {
	return &Limit{err: LimitError{Name: name, Max: max, Hint: hint}, slots: make(chan struct{}, max)}
}

// Acquire takes one, or returns the LimitError (counted) when max are taken.
func (l *Limit) Acquire() (release func(), err error) {
	select {
	case l.slots <- struct{}{}:
		var once atomic.Bool
		return func() {
			if once.CompareAndSwap(false, true) {
				<-l.slots
			}
		}, nil
	default:
		CountLimitHit(l.err.Name)
		e := l.err
		return nil, &e
	}
}

// AcceptStreams accepts streams on s and runs serve for each, at most MaxStreamsPerConn at
// once: a stream beyond is answered with the LimitError and closed, so a peer holding too many
// gets a clear error on its newest operation and the others carry on. It returns when s
// closes, after every serve returned.
func AcceptStreams(s *yamux.Session, serve func(*yamux.Stream)) {
	acceptStreams(s, MaxStreamsPerConn, serve)
}

func acceptStreams(s *yamux.Session, max int, serve func(*yamux.Stream)) {
	streams := NewLimit(LimitStreams, max, "too many operations, files and connections at once on one session: close some")
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := s.AcceptStream()
		if err != nil {
			return
		}
		release, err := streams.Acquire()
		if err != nil {
			// The peer reads an answer after its request: give it one now, without waiting.
			_ = st.SetWriteDeadline(time.Now().Add(time.Second))
			_ = WriteMessage(st, Response{Error: err.Error()})
			_ = st.Close()
			continue
		}
		wg.Go(func() {
			defer release()
			defer st.Close()
			serve(st)
		})
	}
}
