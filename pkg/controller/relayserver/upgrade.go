package relayserver

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/relay"
)

func upgradeHandler(serve func(net.Conn)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), relay.UpgradeProtocol) {
			http.Error(w, "this is the kubectl-mirrord session relay: connect with kubectl mirrord exec", http.StatusUpgradeRequired)
			return
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			http.Error(w, "cannot upgrade this connection", http.StatusInternalServerError)
			return
		}
		conn, rw, err := hj.Hijack()
		if err != nil {
			return
		}
		_ = conn.SetDeadline(time.Time{})
		if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+relay.UpgradeProtocol+"\r\n\r\n"); err != nil {
			conn.Close()
			return
		}
		serve(&hijackedConn{Conn: conn, r: rw.Reader})
	})
}

// hijackedConn reads first what the HTTP server had buffered.
type hijackedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *hijackedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
