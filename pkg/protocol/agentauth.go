package protocol

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"time"

	"github.com/hashicorp/yamux"
)

// An agent and its member controller share one secret per agent Job, the agent key
// (AgentKeySize random bytes in a Secret only the controller and the agent's pod read). The
// agent leg runs over TLS, and each side proves the key by a MAC of the server's nonce, the
// TLS session's exported keying material and the exact Hello: the key never crosses the
// network, a recorded Hello cannot be replayed, a MITM terminating TLS has another binding
// and fails, and the Hello's features are the key holder's word, not the connecting pod's.
// Certificates prove nothing here (the agent's is made up at start), so they are not checked.

// AgentKeySize is the length of an agent key.
const AgentKeySize = 32

// agentExporterLabel names the keying material exported from the TLS session (RFC 8446 7.5).
const agentExporterLabel = "EXPORTER-kubectl-mirrord-agent-v1"

// The MAC of each side: the client's covers the Hello, the agent's answers it.
const (
	agentClientMAC = "kubectl-mirrord agent hello v1\x00"
	agentServerMAC = "kubectl-mirrord agent welcome v1\x00"
)

// AgentProof follows an agent Hello: the MAC of it by the agent key.
type AgentProof struct {
	MAC []byte `json:"mac"`
}

// maxAgentProof bounds the proof message (a 32-byte MAC in base64 JSON).
const maxAgentProof = 256

// ErrAgentKey is a Hello not signed by the agent's key.
var ErrAgentKey = errors.New("the Hello is not signed with this agent's key: only the member controller that runs the agent can open sessions on it")

func agentMAC(key []byte, label string, nonce, binding, hello []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	for _, b := range [][]byte{nonce, binding, hello} {
		var l [4]byte
		l[0], l[1], l[2], l[3] = byte(len(b)>>24), byte(len(b)>>16), byte(len(b)>>8), byte(len(b))
		m.Write(l[:])
		m.Write(b)
	}
	return m.Sum(nil)
}

// channelBinding is the TLS session's exported keying material, after its handshake.
func channelBinding(conn *tls.Conn) ([]byte, error) {
	if err := conn.Handshake(); err != nil {
		return nil, fmt.Errorf("protocol: TLS handshake: %w", err)
	}
	cs := conn.ConnectionState()
	if cs.Version < tls.VersionTLS13 {
		return nil, errors.New("protocol: the agent leg needs TLS 1.3")
	}
	return cs.ExportKeyingMaterial(agentExporterLabel, nil, 32)
}

// AgentServerTLS is the agent's TLS configuration, with a certificate made up now: the
// peers authenticate each other with the agent key, bound to the session (see above).
func AgentServerTLS() (*tls.Config, error) { return SelfSignedTLS("kubectl-mirrord-agent") }

// SelfSignedTLS is a server's TLS 1.3 configuration with a certificate made up now, for
// peers that do not authenticate the server by its certificate: an agent's member (see
// above), the API server's proxy in front of a relay (it checks no certificate of what it
// proxies to; the relay authenticates its clients itself).
func SelfSignedTLS(commonName string) (*tls.Config, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}},
	}, nil
}

// AgentClientTLS is the member's TLS configuration towards agents. The certificate is not
// verified: the agent proves its key over this very TLS session in the Welcome instead.
func AgentClientTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true} //nolint:gosec // authenticated by channel-bound MACs (AcceptAgent, DialAgent)
}

// DialAgent runs the client side of the handshake with an agent on conn (TLS, see
// AgentClientTLS): the Hello is signed with the agent key, and the agent must prove the same
// key before the session is used.
func DialAgent(conn *tls.Conn, hello Hello, key []byte) (*yamux.Session, error) {
	if len(key) != AgentKeySize {
		return nil, fmt.Errorf("protocol: an agent key has %d bytes, not %d", AgentKeySize, len(key))
	}
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	binding, err := channelBinding(conn)
	if err != nil {
		return nil, err
	}
	br, nonce, err := clientOpen(conn)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(hello)
	if err != nil {
		return nil, err
	}
	if err := writeRaw(conn, raw); err != nil {
		return nil, err
	}
	if err := WriteMessage(conn, AgentProof{MAC: agentMAC(key, agentClientMAC, nonce, binding, raw)}); err != nil {
		return nil, err
	}
	var w Welcome
	if err := ReadMessage(br, &w); err != nil {
		return nil, err
	}
	if w.Error != "" {
		return nil, &RefusedError{Reason: w.Error}
	}
	if !hmac.Equal(w.Proof, agentMAC(key, agentServerMAC, nonce, binding, raw)) {
		return nil, errors.New("protocol: the peer did not prove the agent's key: it is not the agent it claims to be")
	}
	_ = conn.SetDeadline(time.Time{})
	return yamux.Client(coalesce(&bufferedConn{Conn: conn, r: br}, conn), muxConfig())
}

// AcceptAgent runs an agent's side of the handshake on conn (TLS, see AgentServerTLS): the
// Hello must be signed with key (compared in constant time) before check sees it; the
// Welcome proves the key back.
func AcceptAgent(conn *tls.Conn, key []byte, check func(Hello) error) (Hello, *yamux.Session, error) {
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	binding, err := channelBinding(conn)
	if err != nil {
		return Hello{}, nil, err
	}
	return acceptAgent(conn, binding, key, check)
}

// acceptAgent is AcceptAgent once TLS is up and binding known: everything a peer that has not
// proved the key can make the agent read.
func acceptAgent(conn net.Conn, binding, key []byte, check func(Hello) error) (Hello, *yamux.Session, error) {
	var hello Hello
	br, nonce, err := serverOpen(conn)
	if err != nil {
		return hello, nil, err
	}
	raw, err := readRaw(br, MaxHello)
	if err != nil {
		return hello, nil, err
	}
	var proof AgentProof
	if err := readMessage(br, &proof, maxAgentProof); err != nil {
		return hello, nil, err
	}
	refuse := ErrAgentKey
	if len(key) != AgentKeySize {
		refuse = errors.New("the agent has no key yet: its member controller has not written this Job's Secret")
	} else if hmac.Equal(proof.MAC, agentMAC(key, agentClientMAC, nonce, binding, raw)) {
		refuse = nil
		if err := decodeStrict(raw, &hello); err != nil {
			refuse = err
		} else if check != nil {
			refuse = check(hello)
		}
	}
	w := Welcome{Version: Version}
	if refuse != nil {
		w.Error = refuse.Error()
	} else {
		w.Proof = agentMAC(key, agentServerMAC, nonce, binding, raw)
	}
	if err := WriteMessage(conn, w); err != nil {
		return hello, nil, err
	}
	if refuse != nil {
		return hello, nil, refuse
	}
	_ = conn.SetDeadline(time.Time{})
	s, err := yamux.Server(coalesce(&bufferedConn{Conn: conn, r: br}, conn), muxConfig())
	return hello, s, err
}

// clientOpen exchanges heads and reads the server's challenge.
func clientOpen(conn io.ReadWriter) (*bufio.Reader, []byte, error) {
	if err := writeHead(conn); err != nil {
		return nil, nil, err
	}
	br := bufio.NewReader(conn)
	v, err := readHead(br)
	if err != nil {
		return nil, nil, err
	}
	if v != Version {
		return nil, nil, fmt.Errorf("protocol version %d here, %d at the peer: use the same kubectl-mirrord version on both", Version, v)
	}
	var ch Challenge
	if err := ReadMessage(br, &ch); err != nil {
		return nil, nil, err
	}
	return br, ch.Nonce, nil
}

// serverOpen exchanges heads and sends a fresh challenge.
func serverOpen(conn io.ReadWriter) (*bufio.Reader, []byte, error) {
	br := bufio.NewReader(conn)
	v, err := readHead(br)
	if err != nil {
		return nil, nil, err
	}
	if err := writeHead(conn); err != nil {
		return nil, nil, err
	}
	if v != Version {
		return nil, nil, fmt.Errorf("protocol version %d at the client, %d here", v, Version)
	}
	nonce := make([]byte, 32)
	_, _ = rand.Read(nonce)
	if err := WriteMessage(conn, Challenge{Nonce: nonce}); err != nil {
		return nil, nil, err
	}
	return br, nonce, nil
}
