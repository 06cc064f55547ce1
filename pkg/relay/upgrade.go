// Package relay is the relay's contract and its thin client: where a controller's relay
// listens and how it is reached through an API server (Dial, ServicePath), the session and
// heartbeat connections a CLI opens (DialSession, Heartbeater), and the installation's
// description (GetInfo). The relay itself runs in the controller (pkg/controller/relayserver).
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// UpgradeProtocol is the HTTP Upgrade token of the session protocol. Every hop that crosses
// an API server (the CLI to the Primary, the Primary to a member) is an HTTP/1.1 upgrade
// through the API server's service proxy, so nothing is exposed but the API server itself.
const UpgradeProtocol = "kubectl-mirrord-session"

// The relay Service every controller installation has, its port's name and number.
const (
	ServiceName = "mirrord-relay"
	PortName    = "relay"
	Port        = 7200
	// Path is where the relay accepts upgrades.
	Path = "/session"
)

// ProxyScheme is how the API server's service proxy reaches a relay: the relay serves TLS,
// so the hop from the API server to its pod carries tokens and traffic encrypted.
const ProxyScheme = "https"

// ServicePath is the API server path that proxies to the relay Service in namespace ns.
func ServicePath(ns string) string {
	return fmt.Sprintf("/api/v1/namespaces/%s/services/%s:%s:%s/proxy%s", url.PathEscape(ns), ProxyScheme, ServiceName, PortName, Path)
}

// Dial opens an upgraded connection to path on the server cfg points at, with cfg's
// credentials: through an API server's service proxy, or straight to a relay.
func Dial(ctx context.Context, cfg *rest.Config, path string) (net.Conn, error) {
	cfg = rest.CopyConfig(cfg)
	// Upgrades need HTTP/1.1: no HTTP/2 offered in TLS.
	cfg.TLSClientConfig.NextProtos = []string{"http/1.1"}
	cfg.Timeout = 0
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, err
	}
	host := cfg.Host
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	u, err := url.Parse(strings.TrimSuffix(host, "/") + path)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", UpgradeProtocol)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, &UpgradeError{Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return nil, errors.New("the upgraded connection is not writable")
	}
	return &upgradedConn{rwc: rwc, addr: u.Host}, nil
}

// UpgradeError is an upgrade the server (or the API server in front of it) refused.
type UpgradeError struct {
	Status int
	Body   string
}

func (e *UpgradeError) Error() string {
	return fmt.Sprintf("upgrade refused with HTTP %d: %s", e.Status, e.Body)
}

// upgradedConn is an upgraded response body as a net.Conn; deadlines close it.
type upgradedConn struct {
	rwc  io.ReadWriteCloser
	addr string

	mu    sync.Mutex
	timer *time.Timer
}

func (c *upgradedConn) Read(p []byte) (int, error)  { return c.rwc.Read(p) }
func (c *upgradedConn) Write(p []byte) (int, error) { return c.rwc.Write(p) }
func (c *upgradedConn) Close() error                { return c.rwc.Close() }
func (c *upgradedConn) LocalAddr() net.Addr         { return addr("local") }
func (c *upgradedConn) RemoteAddr() net.Addr        { return addr(c.addr) }

// SetDeadline closes the connection at t: enough to bound a handshake.
func (c *upgradedConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if !t.IsZero() {
		c.timer = time.AfterFunc(time.Until(t), func() { _ = c.rwc.Close() })
	}
	return nil
}
func (c *upgradedConn) SetReadDeadline(t time.Time) error  { return c.SetDeadline(t) }
func (c *upgradedConn) SetWriteDeadline(t time.Time) error { return c.SetDeadline(t) }

type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }

// upgradeHandler accepts upgrades to the session protocol and hands each connection on.
