// Package proxy is exec's proxy mode, for machines where the command cannot get its own
// namespaces (macOS, containers that forbid user namespaces): one local port that speaks
// both SOCKS5 and HTTP proxy (CONNECT and absolute-form requests). The command finds it
// through HTTP_PROXY, HTTPS_PROXY and ALL_PROXY; names it is given are resolved as the
// target resolves them, and connections are made from the target's network (or locally, as
// the outgoing filter says). Every other user of the machine can reach a port on 127.0.0.1,
// so the proxy serves only whoever shows its credential, which only the command's
// environment holds: Basic Proxy-Authorization for HTTP, RFC 1929 for SOCKS5, both from the
// user:password in the *_PROXY URLs.
package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/httpconn"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/outgoing"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// Dialer makes the proxy's connections.
type Dialer interface {
	LookupHost(ctx context.Context, host string, rc outgoing.ResolvConf) (netip.Addr, error)
	DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error)
}

// Server is a running proxy.
type Server struct {
	Dialer     Dialer
	ResolvConf outgoing.ResolvConf

	ln       net.Listener
	wg       sync.WaitGroup
	password string // made up by Listen; the user is proxyUser
}

// proxyUser is the user name of the proxy's credential.
const proxyUser = "mirrord"

// Listen starts serving on 127.0.0.1 (a port of the system's choosing).
func (s *Server) Listen(ctx context.Context) error {
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	s.password = hex.EncodeToString(secret)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.ln = ln
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() {
				defer c.Close()
				s.serve(ctx, c)
			})
		}
	})
	return nil
}

// Addr is where the proxy listens.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Env are the variables that point programs at the proxy. ALL_PROXY is socks5h: names go to
// the proxy unresolved, so they are resolved as the target resolves them.
func (s *Server) Env() []string {
	cred := url.UserPassword(proxyUser, s.password).String() + "@"
	http := "http://" + cred + s.Addr()
	socks := "socks5h://" + cred + s.Addr()
	noProxy := "localhost,127.0.0.1,::1"
	var env []string
	for _, kv := range [][2]string{{"HTTP_PROXY", http}, {"HTTPS_PROXY", http}, {"ALL_PROXY", socks}, {"NO_PROXY", noProxy}} {
		env = append(env, kv[0]+"="+kv[1], strings.ToLower(kv[0])+"="+kv[1])
	}
	return env
}

// Close stops accepting and waits for the connections to end.
func (s *Server) Close() {
	if s.ln != nil {
		s.ln.Close()
	}
}

func (s *Server) serve(ctx context.Context, c net.Conn) {
	br := bufio.NewReader(c)
	first, err := br.Peek(1)
	if err != nil {
		return
	}
	if first[0] == 5 {
		s.serveSOCKS5(ctx, c, br)
		return
	}
	s.serveHTTP(ctx, c, br)
}

// dial connects to host:port as the target would.
func (s *Server) dial(ctx context.Context, host string, port uint16) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ip, err := s.Dialer.LookupHost(ctx, host, s.ResolvConf)
	if err != nil {
		return nil, err
	}
	return s.Dialer.DialTCP(ctx, netip.AddrPortFrom(ip, port))
}

// authorized says whether user and password are the proxy's credential.
func (s *Server) authorized(user, password string) bool {
	u := subtle.ConstantTimeCompare([]byte(user), []byte(proxyUser))
	p := subtle.ConstantTimeCompare([]byte(password), []byte(s.password))
	return u&p == 1 && s.password != ""
}

// SOCKS5 (RFC 1928) with username/password authentication (RFC 1929), CONNECT only.
func (s *Server) serveSOCKS5(ctx context.Context, c net.Conn, br *bufio.Reader) {
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(br, methods); err != nil {
		return
	}
	if !slices.Contains(methods, 2) { // username/password
		_, _ = c.Write([]byte{5, 0xff})
		return
	}
	if _, err := c.Write([]byte{5, 2}); err != nil {
		return
	}
	var ver [2]byte
	if _, err := io.ReadFull(br, ver[:]); err != nil || ver[0] != 1 {
		return
	}
	user := make([]byte, ver[1])
	if _, err := io.ReadFull(br, user); err != nil {
		return
	}
	pl, err := br.ReadByte()
	if err != nil {
		return
	}
	password := make([]byte, pl)
	if _, err := io.ReadFull(br, password); err != nil {
		return
	}
	if !s.authorized(string(user), string(password)) {
		_, _ = c.Write([]byte{1, 1})
		return
	}
	if _, err := c.Write([]byte{1, 0}); err != nil {
		return
	}
	var req [4]byte
	if _, err := io.ReadFull(br, req[:]); err != nil || req[0] != 5 {
		return
	}
	var host string
	switch req[3] {
	case 1, 4: // IPv4, IPv6
		ip := make([]byte, map[byte]int{1: 4, 4: 16}[req[3]])
		if _, err := io.ReadFull(br, ip); err != nil {
			return
		}
		a, _ := netip.AddrFromSlice(ip)
		host = a.String()
	case 3: // a name
		l, err := br.ReadByte()
		if err != nil {
			return
		}
		name := make([]byte, l)
		if _, err := io.ReadFull(br, name); err != nil {
			return
		}
		host = string(name)
	default:
		socksReply(c, 8) // address type not supported
		return
	}
	var p [2]byte
	if _, err := io.ReadFull(br, p[:]); err != nil {
		return
	}
	if req[1] != 1 {
		socksReply(c, 7) // only CONNECT: UDP needs the namespaces mode
		return
	}
	up, err := s.dial(ctx, host, binary.BigEndian.Uint16(p[:]))
	if err != nil {
		socksReply(c, replyFor(err))
		return
	}
	defer up.Close()
	socksReply(c, 0)
	splice(c, br, up)
}

func socksReply(c net.Conn, code byte) {
	_, _ = c.Write([]byte{5, code, 0, 1, 0, 0, 0, 0, 0, 0})
}

// replyFor maps a dial error to a SOCKS5 reply code.
func replyFor(err error) byte {
	var re *protocol.RemoteError
	switch {
	case errors.As(err, &re) && re.Errno == 111:
		return 5 // connection refused
	case errors.As(err, &re) && re.Errno == 113:
		return 4 // host unreachable
	}
	return 1 // general failure
}

// serveHTTP serves one HTTP proxy client with net/http's server: CONNECT becomes a tunnel,
// absolute-form requests go through a reverse proxy whose connections are made as the target
// would make them (so 1xx, Expect: 100-continue, upgrades and trailers keep their meaning).
func (s *Server) serveHTTP(ctx context.Context, c net.Conn, br *bufio.Reader) {
	upstream := &http.Transport{
		Proxy: nil, // this is the proxy
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			p, err := strconv.ParseUint(port, 10, 16)
			if err != nil {
				return nil, err
			}
			return s.dial(ctx, host, uint16(p))
		},
		DisableCompression:    true, // the command's request as it was
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       time.Minute,
	}
	defer upstream.CloseIdleConnections()
	forward := httpconn.PassOn(upstream, "kubectl-mirrord: ", nil) // the URL is absolute already
	handler := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if user, password, ok := proxyAuth(req); !ok || !s.authorized(user, password) {
			w.Header().Set("Proxy-Authenticate", `Basic realm="kubectl-mirrord"`)
			w.Header().Set("Connection", "close")
			http.Error(w, "kubectl-mirrord: this proxy serves only the command it was started for (its *_PROXY variables carry the credential)", http.StatusProxyAuthRequired)
			return
		}
		host, port, err := hostPort(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if req.Method != http.MethodConnect {
			httpconn.AsItWas(w)
			forward.ServeHTTP(w, req)
			return
		}
		up, err := s.dial(req.Context(), host, port)
		if err != nil {
			http.Error(w, "kubectl-mirrord: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer up.Close()
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
			return
		}
		splice(conn, brw.Reader, up)
	})
	srv := &http.Server{Handler: handler, BaseContext: func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: time.Minute, IdleTimeout: 2 * time.Minute, ErrorLog: httpconn.DiscardLog}
	_ = httpconn.Serve(srv, &httpconn.Buffered{Conn: c, R: br})
}

// proxyAuth reads the Basic credential of a Proxy-Authorization header.
func proxyAuth(req *http.Request) (user, password string, ok bool) {
	h := req.Header.Get("Proxy-Authorization")
	scheme, enc, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return "", "", false
	}
	user, password, ok = strings.Cut(string(b), ":")
	return user, password, ok
}

func hostPort(req *http.Request) (string, uint16, error) {
	hp := req.Host
	if req.Method != http.MethodConnect {
		if req.URL == nil || req.URL.Host == "" {
			return "", 0, errors.New("not a proxy request: the URL has no host")
		}
		if req.URL.Scheme != "http" {
			return "", 0, fmt.Errorf("scheme %q: only http:// is forwarded; https goes through CONNECT", req.URL.Scheme)
		}
		hp = req.URL.Host
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		host, port = hp, "80"
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("bad port in %q", hp)
	}
	return host, uint16(p), nil
}

// splice copies both ways (what br buffered first) until both directions end.
func splice(c net.Conn, br *bufio.Reader, up net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = protocol.Copy(up, br)
		if cw, ok := up.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	})
	_, _ = protocol.Copy(c, up)
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	wg.Wait()
}
