// Package httpconn serves one already accepted connection with net/http's server: the
// agent's stolen connections and proxy mode's HTTP clients are parsed by net/http, not by
// hand, so every exchange (1xx, Expect: 100-continue, upgrades, trailers, pipelining) keeps
// its meaning.
package httpconn

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
)

// DiscardLog drops net/http's own complaints about a client (one that went away, a broken
// upgrade): the clients' business, not our log.
var DiscardLog = log.New(io.Discard, "", 0)

// Serve serves c with srv until c closes, or until the handler that hijacked it (an upgrade,
// a CONNECT tunnel) returns. srv's ConnState, if set, still sees every state.
func Serve(srv *http.Server, c net.Conn) error {
	var handlers sync.WaitGroup
	defer handlers.Wait()
	h := srv.Handler
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		h.ServeHTTP(w, r)
	})
	l := &oneConnListener{conn: c, done: make(chan struct{})}
	track := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		if track != nil {
			track(c, s)
		}
		if s == http.StateClosed || s == http.StateHijacked {
			l.Close()
		}
	}
	err := srv.Serve(l)
	if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// PassOn is a reverse proxy to rt that changes nothing of a request but what a proxy must
// (hop-by-hop headers, and the URL when route sets it): the client's forwarding headers
// stay and none are added, and the request's trailers go with it. Its errors answer 502,
// their text after errPrefix; a client gone away gets nothing.
func PassOn(rt http.RoundTripper, errPrefix string, route func(*httputil.ProxyRequest)) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			if route != nil {
				route(pr)
			}
			// Rewrite takes the client's forwarding headers out: they are the client's.
			for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v, ok := pr.In.Header[h]; ok {
					pr.Out.Header[h] = v
				}
			}
			// A request's trailers come with the end of its body: the same map, so they are
			// there when the body has been passed on (the proxy's copy of it stays empty).
			pr.Out.Trailer = pr.In.Trailer
		},
		Transport:  rt,
		BufferPool: copyBuffers{},
		// FlushInterval 0: answers of unknown length (streams, server-sent events) are flushed
		// as they come, those of known length once, at their end.
		ErrorLog: DiscardLog,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if !errors.Is(err, context.Canceled) {
				http.Error(w, errPrefix+err.Error(), http.StatusBadGateway)
			}
		},
	}
}

// copyBuffer is the size of the buffer an answer's body is copied through (ReverseProxy's own).
const copyBuffer = 32 << 10

// copyBuffers pools the proxy's copy buffers: without a pool it makes one for every answer,
// and zeroing and collecting 32 KiB per request was a large share of the CPU a stolen or
// passed-on request costs.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, copyBuffer); return &b }}

func (copyBuffers) Get() []byte { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) {
	if cap(b) == copyBuffer {
		b = b[:copyBuffer]
		copyBufferPool.Put(&b)
	}
}

// AsItWas keeps net/http's server from adding to an answer passed on from elsewhere: it
// adds a Date and a sniffed Content-Type to answers that have none, unless the headers are
// there with no value. Call it before the answer's headers are copied in.
func AsItWas(w http.ResponseWriter) {
	h := w.Header()
	for _, k := range []string{"Date", "Content-Type"} {
		if _, ok := h[k]; !ok {
			h[k] = nil
		}
	}
}

// Buffered is a connection whose first bytes were read into r (to tell protocols apart):
// reads go through r.
type Buffered struct {
	net.Conn
	R *bufio.Reader
}

func (b *Buffered) Read(p []byte) (int, error) { return b.R.Read(p) }

// CloseWrite half-closes the connection underneath, where it can.
func (b *Buffered) CloseWrite() error {
	if cw, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return b.Conn.Close()
}

// oneConnListener accepts one connection, then blocks until closed.
type oneConnListener struct {
	mu   sync.Mutex
	conn net.Conn
	done chan struct{}
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return &net.TCPAddr{} }
