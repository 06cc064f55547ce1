package mirror

import (
	"slices"
	"sync"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
)

// Hub shares one capture of a target's namespace among every session mirroring it: one
// AF_PACKET ring and one TCP reassembly for the agent, however many sessions subscribe, each
// with its own ports. Each session gets its own copy of each connection, with its own
// buffer: a session that falls behind loses its copy, never another session's.
type Hub struct {
	ns *netns.Handle

	mu   sync.Mutex
	m    *Mirror // capturing the union of the subscribers' ports; nil without subscribers
	subs map[*hubSub]bool
}

type hubSub struct {
	ports   []uint16
	handler Handler
}

// NewHub returns a hub for the target whose namespace is ns; it captures only while someone
// subscribes.
func NewHub(ns *netns.Handle) *Hub { return &Hub{ns: ns, subs: map[*hubSub]bool{}} }

// Subscribe mirrors ports to handler until the returned func is called. The capture starts
// with the first subscriber, widens its filter for a new one's ports without interrupting the
// others, and stops with the last.
func (h *Hub) Subscribe(ports []uint16, handler Handler) (unsubscribe func(), err error) {
	s := &hubSub{ports: slices.Clone(ports), handler: handler}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[s] = true
	if err := h.capture(); err != nil {
		delete(h.subs, s)
		_ = h.capture()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			delete(h.subs, s)
			_ = h.capture() // narrowing the filter cannot lose anyone's traffic
		})
	}, nil
}

// capture brings the capture in line with the subscribers: started, refiltered or stopped.
func (h *Hub) capture() error {
	var union []uint16
	for s := range h.subs {
		union = append(union, s.ports...)
	}
	slices.Sort(union)
	union = slices.Compact(union)
	switch {
	case len(union) == 0:
		if h.m != nil {
			h.m.Close()
			h.m = nil
		}
		return nil
	case h.m == nil:
		m, err := Start(h.ns, union, h.dispatch)
		if err != nil {
			return err
		}
		h.m = m
		return nil
	default:
		return h.m.SetPorts(union)
	}
}

// Close stops the capture.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.subs)
	_ = h.capture()
}

// dispatch hands each subscriber of c's port a copy of c. It reads c as fast as the capture
// writes it (copies never block), so the capture's own buffer never fills.
func (h *Hub) dispatch(c *Conn) {
	h.mu.Lock()
	var copies []*connBuffer
	for s := range h.subs {
		if slices.Contains(s.ports, c.Server.Port()) {
			b := newConnBuffer()
			copies = append(copies, b)
			go s.handler(&Conn{Client: c.Client, Server: c.Server, Data: b})
		}
	}
	h.mu.Unlock()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Data.Read(buf)
		for _, b := range copies {
			if n > 0 {
				b.write(buf[:n])
			}
			if err != nil {
				b.end(err)
			}
		}
		if err != nil {
			return
		}
	}
}
