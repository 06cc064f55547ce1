package relayserver

import (
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/relay"
)

func TestUpgrade(t *testing.T) {
	srv := httptest.NewServer(upgradeHandler(func(c net.Conn) {
		defer c.Close()
		_, _ = io.Copy(c, c) // echo
	}))
	defer srv.Close()
	conn, err := relay.Dial(t.Context(), &rest.Config{Host: srv.URL}, relay.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q %v", buf, err)
	}
	// A plain GET is told what the endpoint is.
	resp, err := srv.Client().Get(srv.URL + relay.Path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 426 || !strings.Contains(string(b), "kubectl mirrord exec") {
		t.Errorf("plain GET: %d %s", resp.StatusCode, b)
	}
}
