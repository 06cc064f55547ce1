package steal

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"sync/atomic"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/httpconn"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/httpfilter"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// h2Preface opens every HTTP/2 connection with prior knowledge.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Serve routes the requests of one stolen connection, HTTP/1.x or cleartext HTTP/2 (told
// apart by the HTTP/2 preface): those f matches to session, the rest to the original
// destination, which dial reaches. Both sides are net/http's: its server parses what the
// client sends (1xx, Expect: 100-continue, chunked bodies and trailers, pipelining, upgrades),
// and a reverse proxy passes each request on, so every exchange keeps HTTP's meaning.
func Serve(ctx context.Context, client net.Conn, f *httpfilter.Filter, session http.RoundTripper, dial func(context.Context) (net.Conn, error)) error {
	cr := bufio.NewReaderSize(client, readBuffer)
	// A client that connects and says nothing is closed after IdleTimeout.
	_ = client.SetReadDeadline(time.Now().Add(IdleTimeout))
	h2 := true
	for n := 1; n <= len(h2Preface); n++ {
		b, err := cr.Peek(n)
		if err != nil {
			client.Close()
			return nil // closed (or silent) before a request
		}
		if b[n-1] != h2Preface[n-1] {
			h2 = false
			break
		}
	}
	_ = client.SetReadDeadline(time.Time{}) // the server keeps its own
	return serveHTTP(ctx, &watchedConn{Conn: client, r: cr}, h2, f, session, dial)
}

// serveHTTP serves one stolen connection with net/http's server, HTTP/2 with prior knowledge
// when h2: each request goes to the session if f matches it, else to the original
// destination over connections of the same protocol that dial opens (one at a time for
// HTTP/1, as the client's requests come one at a time).
func serveHTTP(ctx context.Context, client *watchedConn, h2 bool, f *httpfilter.Filter, session http.RoundTripper, dial func(context.Context) (net.Conn, error)) error {
	upstream := &http.Transport{
		Protocols:   new(http.Protocols),
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		// The client's request as it was: no gzip asked or undone on its behalf.
		DisableCompression: true,
		// An Expect: 100-continue request waits for the target's word before its body, as it
		// would without the session (a target that never answers 100 gets it after this).
		ExpectContinueTimeout: time.Second,
		MaxIdleConnsPerHost:   1,
		IdleConnTimeout:       IdleTimeout,
	}
	if h2 {
		upstream.Protocols.SetUnencryptedHTTP2(true)
	} else {
		upstream.Protocols.SetHTTP1(true)
	}
	defer upstream.CloseIdleConnections()
	toTarget, toSession := passOn(upstream), passOn(session)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client.handling.Store(true)
		httpconn.AsItWas(w)
		req := &httpfilter.Request{Request: r}
		if f.NeedsBody && !readFilterBody(w, req) {
			return
		}
		if f.Match(req) {
			toSession.ServeHTTP(w, r)
		} else {
			toTarget.ServeHTTP(w, r)
		}
	})
	srv := &http.Server{Protocols: new(http.Protocols), Handler: handler, BaseContext: func(net.Listener) context.Context { return ctx },
		MaxHeaderBytes: MaxHeaderBytes, ReadHeaderTimeout: HeaderTimeout, IdleTimeout: IdleTimeout, ErrorLog: httpconn.DiscardLog}
	if h2 {
		srv.Protocols.SetUnencryptedHTTP2(true)
	} else {
		srv.Protocols.SetHTTP1(true)
	}
	srv.ConnState = func(_ net.Conn, s http.ConnState) { client.track(s) }
	return httpconn.Serve(srv, client)
}

// readFilterBody reads the body of req (at most httpfilter.MaxBody+1 bytes, within
// BodyTimeout) for a body filter, and puts what it read back in front of the rest for
// whoever gets the request. A body too long to filter is left unread by the filter (no
// match); one too slow is answered 408 and false returned, as is one whose client went away.
func readFilterBody(w http.ResponseWriter, req *httpfilter.Request) bool {
	r := req.Request
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(BodyTimeout))
	buf, err := io.ReadAll(io.LimitReader(r.Body, httpfilter.MaxBody+1))
	if err != nil {
		// The deadline stays passed, and the connection closes after the answer: net/http
		// reads no more of this body.
		if isTimeout(err) {
			protocol.CountLimitHit(protocol.LimitStealBodyTime)
			w.Header().Set("Connection", "close")
			http.Error(w, "mirrord: the request body took longer than "+BodyTimeout.String()+" to arrive", http.StatusRequestTimeout)
		}
		return false
	}
	_ = rc.SetReadDeadline(time.Time{})
	if len(buf) > httpfilter.MaxBody {
		protocol.CountLimitHit(protocol.LimitStealBodyBytes)
	} else {
		req.Body = buf
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
	return true
}

// passOn is a reverse proxy to rt that sends each request where its Host says.
func passOn(rt http.RoundTripper) *httputil.ReverseProxy {
	return httpconn.PassOn(rt, "mirrord: ", func(pr *httputil.ProxyRequest) {
		pr.Out.URL.Scheme, pr.Out.URL.Host = "http", pr.In.Host
	})
}

// watchedConn is a stolen connection as its server reads it: what was peeked first, and
// enough bookkeeping to count the requests net/http refuses before any handler sees them
// (headers over MaxHeaderBytes, answered 431, or slower than HeaderTimeout, closed).
type watchedConn struct {
	net.Conn
	r *bufio.Reader
	// Since the last request ended: read counts the bytes read, timedOut says a read passed
	// its deadline, active that net/http began a request (StateActive), handling that a
	// handler has it.
	read     atomic.Int64
	timedOut atomic.Bool
	active   atomic.Bool
	handling atomic.Bool
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read.Add(int64(n))
	if err != nil && isTimeout(err) {
		c.timedOut.Store(true)
	}
	return n, err
}

// track follows the connection's states (http.Server.ConnState).
func (c *watchedConn) track(s http.ConnState) {
	switch s {
	case http.StateActive:
		c.active.Store(true)
	case http.StateIdle: // a request done: the next starts afresh
		c.read.Store(0)
		c.timedOut.Store(false)
		c.active.Store(false)
		c.handling.Store(false)
	case http.StateClosed:
		// Closed in the middle of a request no handler got: its headers were too large or
		// too slow (or malformed, which is not a limit).
		if !c.active.Load() || c.handling.Load() {
			return
		}
		switch {
		case c.read.Load() >= MaxHeaderBytes:
			protocol.CountLimitHit(protocol.LimitStealHeaderBytes)
		case c.timedOut.Load():
			protocol.CountLimitHit(protocol.LimitStealHeaderTime)
		}
	}
}
