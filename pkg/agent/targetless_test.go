package agent

import (
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// startTargetless starts a targetless agent (it locates itself, as in its pod) and returns
// the address of its session port.
func startTargetless(t *testing.T) string {
	t.Helper()
	cfg := Config{Targetless: true, TargetNamespace: "shop", KeyDir: t.TempDir()}
	writeKey(t, cfg.KeyDir, testKey)
	a := New(cfg)
	if err := a.loadKey(); err != nil {
		t.Fatal(err)
	}
	if how, err := a.locate(t.Context()); err != nil {
		t.Fatalf("locate (%s): %v", how, err)
	}
	t.Cleanup(a.close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = a.ServeConn(t.Context(), c) }()
		}
	}()
	return ln.Addr().String()
}

// A targetless agent serves from its own pod: its network (no setns, so no privilege), its
// environment less its own settings, its files; incoming traffic is refused with the fix.
func TestTargetlessServesFromItsOwnPod(t *testing.T) {
	t.Setenv(agentconfig.ConfigEnv, `{"targetless":true}`)
	t.Setenv("GOMAXPROCS", "1")
	t.Setenv("SHOP_DB", "postgres://db.shop:5432")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "from the pod's network") })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	c := connect(t, startTargetless(t), "mirrord-system/tl", mirrordv1alpha1.Features{})
	env, err := c.Env()
	if err != nil {
		t.Fatal(err)
	}
	if env["SHOP_DB"] != "postgres://db.shop:5432" {
		t.Errorf("env SHOP_DB = %q, want the agent pod's", env["SHOP_DB"])
	}
	for _, own := range []string{agentconfig.ConfigEnv, "GOMAXPROCS"} {
		if _, ok := env[own]; ok {
			t.Errorf("env has the agent's own %s", own)
		}
	}
	if host, _ := os.Hostname(); env["HOSTNAME"] != host {
		t.Errorf("env HOSTNAME = %q, want the pod's %q", env["HOSTNAME"], host)
	}

	conn, err := c.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial from the agent's own network: %v", err)
	}
	io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n")
	body, _ := io.ReadAll(conn)
	conn.Close()
	if !strings.Contains(string(body), "from the pod's network") {
		t.Errorf("response = %q", body)
	}

	file := t.TempDir() + "/config.yaml"
	if err := os.WriteFile(file, []byte("in the agent's image"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := c.Open(file, os.O_RDONLY, 0)
	if err != nil {
		t.Fatalf("files from the agent's own root: %v", err)
	}
	f.Close()

	if _, err := c.Subscribe(); err == nil || !strings.Contains(err.Error(), "a targetless session receives no incoming traffic") {
		t.Errorf("incoming subscription: err = %v, want the targetless refusal", err)
	}
}
