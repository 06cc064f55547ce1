package protocol

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

var (
	agentKey = bytes.Repeat([]byte{7}, AgentKeySize)
	otherKey = bytes.Repeat([]byte{8}, AgentKeySize)
)

// serveTLS serves TLS as an agent does on a loopback port until t ends, each connection
// by serve in its own goroutine (closed after it), and returns the address.
func serveTLS(t *testing.T, serve func(*tls.Conn)) string {
	t.Helper()
	cfg, err := AgentServerTLS()
	if err != nil {
		t.Fatal(err)
	}
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
			go func() {
				defer c.Close()
				serve(tls.Server(c, cfg))
			}()
		}
	}()
	return ln.Addr().String()
}

// agentServer serves AcceptAgent with key on a loopback port; each accepted Hello (or the
// refusal) is sent on the returned channel.
func agentServer(t *testing.T, key []byte) (string, chan error, chan Hello) {
	t.Helper()
	errs, hellos := make(chan error, 10), make(chan Hello, 10)
	addr := serveTLS(t, func(c *tls.Conn) {
		h, s, err := AcceptAgent(c, key, nil)
		errs <- err
		if err == nil {
			hellos <- h
			_ = s.Close()
		}
	})
	return addr, errs, hellos
}

func dialTLS(t *testing.T, addr string) *tls.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return tls.Client(c, AgentClientTLS())
}

// TestAgentHandshake: only the holder of the agent's key opens a session, with the
// features it signed; the agent proves the key back.
func TestAgentHandshake(t *testing.T) {
	features := &mirrordv1alpha1.Features{FS: mirrordv1alpha1.FSFeature{Mode: "read"}}
	hello := Hello{Session: "ns/child", Features: features}

	t.Run("the key holder", func(t *testing.T) {
		addr, errs, hellos := agentServer(t, agentKey)
		s, err := DialAgent(dialTLS(t, addr), hello, agentKey)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		if got := <-hellos; got.Session != "ns/child" || got.Features == nil || got.Features.FS.Mode != "read" {
			t.Errorf("the agent heard %+v", got)
		}
	})
	t.Run("another Job's key", func(t *testing.T) {
		addr, errs, _ := agentServer(t, agentKey)
		_, err := DialAgent(dialTLS(t, addr), hello, otherKey)
		if err == nil || !strings.Contains(err.Error(), "not signed with this agent's key") {
			t.Errorf("dial: %v", err)
		}
		if err := <-errs; !errors.Is(err, ErrAgentKey) {
			t.Errorf("agent: %v", err)
		}
	})
	t.Run("an impostor agent", func(t *testing.T) {
		addr, _, _ := agentServer(t, otherKey)
		// The impostor cannot even check the Hello; a fake one that answers without a proof
		// is the same to the client as one that answers with a wrong one.
		_, err := DialAgent(dialTLS(t, addr), hello, agentKey)
		if err == nil {
			t.Fatal("a session with an agent holding another key")
		}
		addr = fakeWelcome(t)
		_, err = DialAgent(dialTLS(t, addr), hello, agentKey)
		if err == nil || !strings.Contains(err.Error(), "did not prove the agent's key") {
			t.Errorf("dial to a fake agent: %v", err)
		}
	})
	t.Run("features changed on the way", func(t *testing.T) {
		addr, errs, _ := agentServer(t, agentKey)
		conn := dialTLS(t, addr)
		binding, err := channelBinding(conn)
		if err != nil {
			t.Fatal(err)
		}
		br, nonce, err := clientOpen(conn)
		if err != nil {
			t.Fatal(err)
		}
		signed, _ := json.Marshal(hello)
		widened := hello
		widened.Features = &mirrordv1alpha1.Features{FS: mirrordv1alpha1.FSFeature{Mode: "write"}}
		sent, _ := json.Marshal(widened)
		_ = writeRaw(conn, sent)
		_ = WriteMessage(conn, AgentProof{MAC: agentMAC(agentKey, agentClientMAC, nonce, binding, signed)})
		var w Welcome
		if err := ReadMessage(br, &w); err != nil || !strings.Contains(w.Error, "not signed") || w.Proof != nil {
			t.Errorf("welcome %+v, %v", w, err)
		}
		if err := <-errs; !errors.Is(err, ErrAgentKey) {
			t.Errorf("agent: %v", err)
		}
	})
	t.Run("a recorded Hello replayed", func(t *testing.T) {
		addr, errs, _ := agentServer(t, agentKey)
		raw, _ := json.Marshal(hello)
		// A genuine Hello and proof, as the member sends them on one connection ...
		conn := dialTLS(t, addr)
		binding, err := channelBinding(conn)
		if err != nil {
			t.Fatal(err)
		}
		br, nonce, err := clientOpen(conn)
		if err != nil {
			t.Fatal(err)
		}
		proof := AgentProof{MAC: agentMAC(agentKey, agentClientMAC, nonce, binding, raw)}
		_ = writeRaw(conn, raw)
		_ = WriteMessage(conn, proof)
		var w Welcome
		if err := ReadMessage(br, &w); err != nil || w.Error != "" {
			t.Fatalf("genuine Hello: %+v %v", w, err)
		}
		<-errs
		// ... replayed on a new connection: another nonce and another TLS session.
		conn = dialTLS(t, addr)
		if _, err := channelBinding(conn); err != nil {
			t.Fatal(err)
		}
		if br, _, err = clientOpen(conn); err != nil {
			t.Fatal(err)
		}
		_ = writeRaw(conn, raw)
		_ = WriteMessage(conn, proof)
		if err := ReadMessage(br, &w); err != nil || !strings.Contains(w.Error, "not signed") {
			t.Errorf("replayed Hello: %+v %v", w, err)
		}
		if err := <-errs; !errors.Is(err, ErrAgentKey) {
			t.Errorf("agent: %v", err)
		}
	})
	t.Run("a man in the middle", func(t *testing.T) {
		addr, errs, _ := agentServer(t, agentKey)
		// It terminates the client's TLS and opens its own to the agent, passing every byte:
		// the two TLS sessions' bindings differ, so the MAC does not hold.
		mitm := mitmProxy(t, addr)
		_, err := DialAgent(dialTLS(t, mitm), hello, agentKey)
		if err == nil {
			t.Fatal("a session through a man in the middle")
		}
		if err := <-errs; !errors.Is(err, ErrAgentKey) {
			t.Errorf("agent: %v", err)
		}
	})
}

// fakeWelcome answers every handshake with a Welcome carrying no proof.
func fakeWelcome(t *testing.T) string {
	t.Helper()
	return serveTLS(t, func(c *tls.Conn) {
		br, _, err := serverOpen(c)
		if err != nil {
			return
		}
		_, _ = readRaw(br, MaxHello)
		_, _ = readRaw(br, maxAgentProof)
		_ = WriteMessage(c, Welcome{Version: Version})
		_, _ = io.Copy(io.Discard, c)
	})
}

// mitmProxy terminates TLS and relays the plaintext to addr over its own TLS session.
func mitmProxy(t *testing.T, addr string) string {
	t.Helper()
	return serveTLS(t, func(down *tls.Conn) {
		up, err := tls.Dial("tcp", addr, AgentClientTLS())
		if err != nil {
			return
		}
		defer up.Close()
		go func() { _, _ = io.Copy(up, down) }()
		_, _ = io.Copy(down, up)
	})
}

// FuzzAcceptAgent: whatever a peer without the key sends after TLS, the agent reads at most
// the bounded Hello and proof, and never opens a session.
func FuzzAcceptAgent(f *testing.F) {
	var b bytes.Buffer
	_ = writeHead(&b)
	raw, _ := json.Marshal(Hello{Session: "ns/s", Features: &mirrordv1alpha1.Features{}})
	_ = writeRaw(&b, raw)
	_ = WriteMessage(&b, AgentProof{MAC: bytes.Repeat([]byte{1}, 32)})
	f.Add(b.Bytes())
	f.Add([]byte("MIRRORD\x00\x00\x01\x00\x00\x00\x02{}\x00\x00\x00\x02{}"))
	binding := bytes.Repeat([]byte{9}, 32)
	f.Fuzz(func(t *testing.T, in []byte) {
		_, s, err := acceptAgent(&scriptedConn{in: bytes.NewReader(in)}, binding, agentKey, func(Hello) error { return nil })
		if err == nil {
			s.Close()
			t.Fatal("a session without the key's MAC")
		}
	})
}
