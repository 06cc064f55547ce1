package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	xproxy "golang.org/x/net/proxy"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/outgoing"
)

// fakeDialer resolves the names of a made-up cluster to a local test server.
type fakeDialer struct {
	names  map[string]netip.Addr
	server netip.AddrPort
	looked []string
}

func (d *fakeDialer) LookupHost(ctx context.Context, host string, rc outgoing.ResolvConf) (netip.Addr, error) {
	d.looked = append(d.looked, host)
	if ip, ok := d.names[host]; ok {
		return ip, nil
	}
	return netip.Addr{}, fmt.Errorf("%s: no such host", host)
}

func (d *fakeDialer) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	if dst.Addr() != netip.MustParseAddr("10.96.0.7") || dst.Port() != 80 {
		return nil, errors.New("connection refused")
	}
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", d.server.String())
}

func start(t *testing.T) (*Server, *fakeDialer) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hints":
			w.Header().Set("Link", "</app.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
		case "/echo":
			b, _ := io.ReadAll(r.Body) // with Expect: 100-continue, net/http says 100 first
			fmt.Fprintf(w, "backend read %d", len(b))
			return
		}
		fmt.Fprintf(w, "backend saw %s %s", r.Host, r.URL.Path)
	}))
	t.Cleanup(backend.Close)
	d := &fakeDialer{names: map[string]netip.Addr{"api": netip.MustParseAddr("10.96.0.7")}, server: netip.MustParseAddrPort(backend.Listener.Addr().String())}
	s := &Server{Dialer: d}
	if err := s.Listen(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, d
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHTTPProxy(t *testing.T) {
	s, d := start(t)
	pu, _ := url.Parse("http://" + proxyUser + ":" + s.password + "@" + s.Addr())
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	for i := range 2 { // the second request reuses the proxy's upstream connection
		if code, body := get(t, c, fmt.Sprintf("http://api/path%d", i)); code != 200 || body != fmt.Sprintf("backend saw api /path%d", i) {
			t.Errorf("GET through the proxy: %d %q", code, body)
		}
	}
	if code, body := get(t, c, "http://nope/"); code != http.StatusBadGateway || !strings.Contains(body, "nope: no such host") {
		t.Errorf("unknown host: %d %q", code, body)
	}
	if len(d.looked) == 0 || d.looked[0] != "api" {
		t.Errorf("the proxy did not resolve the name as the target: %v", d.looked)
	}
}

func TestCONNECT(t *testing.T) {
	s, _ := start(t)
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT api:80 HTTP/1.1\r\nHost: api:80\r\nProxy-Authorization: Basic %s\r\n\r\nGET /tunnel HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n", basic(proxyUser, s.password))
	b, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(b), "HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK") || !strings.HasSuffix(string(b), "backend saw api /tunnel") {
		t.Errorf("CONNECT tunnel answered %q", b)
	}
}

func TestSOCKS5(t *testing.T) {
	s, d := start(t)
	dialer, err := xproxy.SOCKS5("tcp", s.Addr(), &xproxy.Auth{User: proxyUser, Password: s.password}, xproxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{DialContext: dialer.(xproxy.ContextDialer).DialContext}}
	if code, body := get(t, c, "http://api/socks"); code != 200 || body != "backend saw api /socks" {
		t.Errorf("GET through SOCKS5: %d %q", code, body)
	}
	if _, err := dialer.Dial("tcp", "api:81"); err == nil || !strings.Contains(err.Error(), "general SOCKS server failure") {
		t.Errorf("a refused port: %v", err)
	}
	if d.looked[0] != "api" {
		t.Errorf("names are resolved by the proxy (socks5h): %v", d.looked)
	}
}

func TestEnv(t *testing.T) {
	s, _ := start(t)
	env := strings.Join(s.Env(), " ")
	cred := proxyUser + ":" + s.password + "@"
	for _, want := range []string{"HTTP_PROXY=http://" + cred + s.Addr(), "https_proxy=http://" + cred + s.Addr(), "ALL_PROXY=socks5h://" + cred + s.Addr(), "NO_PROXY=localhost,127.0.0.1,::1"} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %s: %s", want, env)
		}
	}
}

func basic(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// TestProxyCredential: another local user, who can reach 127.0.0.1 but has not the
// command's environment, gets nothing through the proxy: no credential, a wrong one, or
// SOCKS5 without authentication.
func TestProxyCredential(t *testing.T) {
	s, d := start(t)
	for name, header := range map[string]string{
		"no credential":    "",
		"a wrong password": "Proxy-Authorization: Basic " + basic(proxyUser, "guess") + "\r\n",
		"another user":     "Proxy-Authorization: Basic " + basic("root", s.password) + "\r\n",
		"another scheme":   "Proxy-Authorization: Bearer " + s.password + "\r\n",
	} {
		for _, req := range []string{"CONNECT api:80 HTTP/1.1\r\nHost: api:80\r\n", "GET http://api/x HTTP/1.1\r\nHost: api\r\n"} {
			c, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "%s%s\r\n", req, header)
			b, _ := io.ReadAll(c)
			c.Close()
			if !strings.HasPrefix(string(b), "HTTP/1.1 407 Proxy Authentication Required\r\n") {
				t.Errorf("%s, %q: answered %q", name, strings.Fields(req)[0], b)
			}
		}
	}
	for name, auth := range map[string]*xproxy.Auth{"SOCKS5 without authentication": nil, "SOCKS5 with a wrong password": {User: proxyUser, Password: "guess"}} {
		dialer, err := xproxy.SOCKS5("tcp", s.Addr(), auth, xproxy.Direct)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := dialer.Dial("tcp", "api:80"); err == nil {
			c.Close()
			t.Errorf("%s: connected", name)
		}
	}
	if len(d.looked) != 0 {
		t.Errorf("refused clients made the proxy resolve %v", d.looked)
	}
}

// TestHTTPProxyInterim: the proxy passes the server's 1xx answers on as they come: 103 Early
// Hints before the answer, and 100 Continue before a body the client holds back for it.
func TestHTTPProxyInterim(t *testing.T) {
	s, _ := start(t)
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	auth := basic(proxyUser, s.password)
	fmt.Fprintf(c, "GET http://api/hints HTTP/1.1\r\nHost: api\r\nProxy-Authorization: Basic %s\r\n\r\n", auth)
	var codes []int
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode >= 200 {
			_, _ = io.Copy(io.Discard, resp.Body)
			break
		}
	}
	if fmt.Sprint(codes) != "[103 200]" {
		t.Errorf("answers %v, want [103 200]", codes)
	}
	fmt.Fprintf(c, "POST http://api/echo HTTP/1.1\r\nHost: api\r\nProxy-Authorization: Basic %s\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", auth)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("before the body: %v %v, want 100 Continue", resp, err)
	}
	io.WriteString(c, "hello")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "backend read 5" {
		t.Errorf("answer %d %q", resp.StatusCode, b)
	}
}
