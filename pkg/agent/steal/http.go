package steal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// Filter matches HTTP requests: every set expression must match (header and each required
// header: one "Name: value" line; path: the request path; method: the method).
type Filter struct {
	header, path, method *regexp.Regexp
	required             []*regexp.Regexp
}

// CompileFilter compiles a session's httpFilter; an invalid expression is an error naming
// its key. A nil or empty filter is nil: steal whole ports. Required headers alone (a
// policy's, on a session that gave no filter) still filter: they are never dropped.
func CompileFilter(f *mirrordv1alpha1.HTTPFilter) (*Filter, error) {
	if f == nil || (f.Header == "" && f.Path == "" && f.Method == "" && len(f.RequiredHeaders) == 0) {
		return nil, nil
	}
	var out Filter
	for _, e := range []struct {
		key, expr string
		into      **regexp.Regexp
	}{{"header", f.Header, &out.header}, {"path", f.Path, &out.path}, {"method", f.Method, &out.method}} {
		if e.expr == "" {
			continue
		}
		re, err := regexp.Compile(e.expr)
		if err != nil {
			return nil, fmt.Errorf("feature.network.incoming.httpFilter.%s: invalid regular expression %q: %w", e.key, e.expr, err)
		}
		*e.into = re
	}
	for i, expr := range f.RequiredHeaders {
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("feature.network.incoming.httpFilter.requiredHeaders[%d]: invalid regular expression %q: %w", i, expr, err)
		}
		out.required = append(out.required, re)
	}
	return &out, nil
}

// Match reports whether r is the session's.
func (f *Filter) Match(r *http.Request) bool {
	if f.method != nil && !f.method.MatchString(r.Method) {
		return false
	}
	if f.path != nil && !f.path.MatchString(r.URL.Path) {
		return false
	}
	if f.header == nil && len(f.required) == 0 {
		return true
	}
	lines := []string{"Host: " + r.Host}
	for k, vs := range r.Header {
		for _, v := range vs {
			lines = append(lines, k+": "+v)
		}
	}
	anyLine := func(re *regexp.Regexp) bool {
		for _, l := range lines {
			if re.MatchString(l) {
				return true
			}
		}
		return false
	}
	if f.header != nil && !anyLine(f.header) {
		return false
	}
	for _, re := range f.required {
		if !anyLine(re) {
			return false
		}
	}
	return true
}

// RoundTripFunc answers a request the filter gave to the session.
type RoundTripFunc func(*http.Request) (*http.Response, error)

// serveHTTP1 routes the requests of one stolen HTTP/1.x connection one by one, in order:
// those f matches to session, the rest unchanged to the original destination over one
// passthrough connection opened by dial when first needed. A 101 answer from the original
// turns the connection into a tunnel to it. It returns when either side closes. cr reads
// client through lim (Serve has peeked at it). Each request waits at most IdleTimeout for
// its first byte, then HeaderTimeout and MaxHeaderBytes for its headers; its body is not
// timed (uploads may be slow).
func serveHTTP1(ctx context.Context, client net.Conn, cr *bufio.Reader, lim *readLimit, f *Filter, session RoundTripFunc, dial func(context.Context) (net.Conn, error)) error {
	defer client.Close()
	var pass net.Conn
	var pr *bufio.Reader
	defer func() {
		if pass != nil {
			pass.Close()
		}
	}()
	for {
		_ = client.SetReadDeadline(time.Now().Add(IdleTimeout))
		if _, err := cr.Peek(1); err != nil {
			return nil // closed, or idle too long
		}
		_ = client.SetReadDeadline(time.Now().Add(HeaderTimeout))
		lim.limit(MaxHeaderBytes + readBuffer - int64(cr.Buffered()))
		req, err := http.ReadRequest(cr)
		lim.limit(-1)
		_ = client.SetReadDeadline(time.Time{})
		if err != nil {
			switch {
			case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
				return nil
			case errors.Is(err, errHeaderTooLarge):
				protocol.CountLimitHit(protocol.LimitStealHeaderBytes)
				tooLarge := &http.Request{Method: http.MethodGet, ProtoMajor: 1, ProtoMinor: 1}
				resp := errorResponse(tooLarge, http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("mirrord: request headers larger than %d bytes", MaxHeaderBytes))
				resp.Close = true
				_ = protocol.WriteBuffered(client, resp.Write)
				return fmt.Errorf("reading a request: %w", err)
			case isTimeout(err):
				protocol.CountLimitHit(protocol.LimitStealHeaderTime)
				return fmt.Errorf("reading a request: its headers took longer than %s", HeaderTimeout)
			}
			return fmt.Errorf("reading a request: %w", err)
		}
		var resp *http.Response
		if f.Match(req) {
			if resp, err = session(req); err != nil {
				resp = errorResponse(req, http.StatusBadGateway, "mirrord: the session could not answer: "+err.Error())
			}
			// Whatever the session left of the body must not be taken for the next request.
			_, _ = io.Copy(io.Discard, req.Body)
		} else {
			if pass == nil {
				if pass, err = dial(ctx); err != nil {
					resp := errorResponse(req, http.StatusBadGateway, "mirrord: cannot reach the target: "+err.Error())
					_ = protocol.WriteBuffered(client, resp.Write)
					return err
				}
				pr = bufio.NewReader(pass)
			}
			if err := protocol.WriteBuffered(pass, req.Write); err != nil {
				return fmt.Errorf("passing a request on: %w", err)
			}
			if resp, err = http.ReadResponse(pr, req); err != nil {
				return fmt.Errorf("reading the target's answer: %w", err)
			}
			if resp.StatusCode == http.StatusSwitchingProtocols {
				if err := protocol.WriteBuffered(client, resp.Write); err != nil {
					return err
				}
				return tunnel(client, cr, pass, pr)
			}
		}
		err = protocol.WriteBuffered(client, resp.Write)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("answering: %w", err)
		}
		if req.Close || resp.Close {
			return nil
		}
	}
}

// tunnel copies both ways, including what the readers already buffered, until both end.
func tunnel(a net.Conn, ar *bufio.Reader, b net.Conn, br *bufio.Reader) error {
	var wg sync.WaitGroup
	cp := func(dst net.Conn, src io.Reader) {
		_, _ = protocol.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Go(func() { cp(b, ar) })
	wg.Go(func() { cp(a, br) })
	wg.Wait()
	return nil
}

func errorResponse(req *http.Request, code int, msg string) *http.Response {
	return &http.Response{
		StatusCode: code, ProtoMajor: 1, ProtoMinor: 1, Request: req,
		Header:        http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		Body:          io.NopCloser(strings.NewReader(msg + "\n")),
		ContentLength: int64(len(msg) + 1),
	}
}
