package steal

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// h2Preface opens every HTTP/2 connection with prior knowledge.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Serve routes the requests of one stolen connection, HTTP/1.x or cleartext HTTP/2 (told
// apart by the HTTP/2 preface): those f matches to session, the rest to the original
// destination, which dial reaches.
func Serve(ctx context.Context, client net.Conn, f *Filter, session RoundTripFunc, dial func(context.Context) (net.Conn, error)) error {
	lim := newReadLimit(client)
	cr := bufio.NewReaderSize(lim, readBuffer)
	// A client that connects and says nothing is closed after IdleTimeout.
	_ = client.SetReadDeadline(time.Now().Add(IdleTimeout))
	for n := 1; n <= len(h2Preface); n++ {
		b, err := cr.Peek(n)
		if err != nil {
			client.Close()
			return nil // closed (or silent) before a request
		}
		if b[n-1] != h2Preface[n-1] {
			return serveHTTP1(ctx, client, cr, lim, f, session, dial)
		}
	}
	_ = client.SetReadDeadline(time.Time{}) // the HTTP/2 server keeps its own
	return serveH2C(ctx, &bufferedConn{Conn: client, r: cr}, f, session, dial)
}

// serveH2C terminates HTTP/2 on the stolen connection and serves each stream: matching
// requests to session, the rest over one HTTP/2 connection to the original destination.
func serveH2C(ctx context.Context, client net.Conn, f *Filter, session RoundTripFunc, dial func(context.Context) (net.Conn, error)) error {
	upstream := &http.Transport{Protocols: new(http.Protocols), DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }}
	upstream.Protocols.SetUnencryptedHTTP2(true)
	defer upstream.CloseIdleConnections()

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var resp *http.Response
		var err error
		if f.Match(r) {
			resp, err = session(r)
		} else {
			out := r.Clone(r.Context())
			out.RequestURI = ""
			out.URL.Scheme, out.URL.Host = "http", r.Host
			resp, err = upstream.RoundTrip(out)
		}
		if err != nil {
			http.Error(w, "mirrord: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		for k := range resp.Trailer {
			w.Header().Add("Trailer", k)
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(flushWriter{w}, resp.Body)
		for k, vs := range resp.Trailer {
			w.Header()[k] = vs
		}
	})
	srv := &http.Server{Protocols: new(http.Protocols), Handler: handler, BaseContext: func(net.Listener) context.Context { return ctx },
		MaxHeaderBytes: MaxHeaderBytes, ReadHeaderTimeout: HeaderTimeout, IdleTimeout: IdleTimeout}
	srv.Protocols.SetUnencryptedHTTP2(true)
	l := &oneConnListener{conn: client, done: make(chan struct{})}
	srv.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed || s == http.StateHijacked {
			l.Close()
		}
	}
	err := srv.Serve(l)
	if err == net.ErrClosed || err == http.ErrServerClosed {
		return nil
	}
	return err
}

type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

// bufferedConn replays what was peeked before handing the connection on.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

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
