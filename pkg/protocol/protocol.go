// Package protocol is the session protocol, the same at every hop (CLI, Primary, member,
// agent): one connection, a versioned handshake, then yamux multiplexing with one stream per
// operation, so a slow file read or connection never blocks another. Every stream opens with
// a length-prefixed JSON Request; the answer is a Response, followed for some operations by
// raw bytes (a dialled connection) or more messages (an open file).
package protocol

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/yamux"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// Version is this side's protocol version; peers must speak the same major version.
const Version uint16 = 1

// magic opens every connection, so a peer that is not a mirrord endpoint fails at once.
const magic = "MIRRORD\x00"

// MaxMessage bounds one message: a peer cannot make the other allocate more.
const MaxMessage = 1 << 20

// MaxHello bounds the Hello, the one message a server reads before the peer has proved
// anything: a session's features, regular expressions included, fit many times over.
const MaxHello = 64 << 10

// Hello is what the connecting side says, after the server's Challenge.
type Hello struct {
	// Kind is what Session names: a MirrordSession (the CLI at the Primary), a
	// MirrordClusterSession (the Primary at a member) or, empty, an agent's session.
	Kind HelloKind `json:"kind,omitempty"`
	// Session is namespace/name of the session this connection serves.
	Session string `json:"session"`
	// Token proves the connecting side may speak for the session (members, agents).
	Token string `json:"token,omitempty"`
	// Proof is the session key's signature of the Challenge (the CLI at the Primary).
	Proof string `json:"proof,omitempty"`
	// Features are what an agent serves this session (a member at an agent): the session's
	// features with the member's policies applied. One agent serves every session on its
	// target pod, each with its own.
	Features *mirrordv1alpha1.Features `json:"features,omitempty"`
	// Targets is what a HelloTargets asks (the Primary at a member).
	Targets *TargetsQuery `json:"targets,omitempty"`
}

// TargetsQuery asks a member which targets one namespace has (`kubectl mirrord ls`).
type TargetsQuery struct {
	Namespace string `json:"namespace"`
	// Kinds narrows the answer; empty for every kind.
	Kinds []mirrordv1alpha1.TargetKind `json:"kinds,omitempty"`
}

// TargetsAnswer is a member's answer to a TargetsQuery, written on the one stream the member
// opens after the handshake.
type TargetsAnswer struct {
	// Targets are paths as sessions name them (deployment/api, pod/api-1/container/app).
	Targets []string `json:"targets,omitempty"`
	// Truncated says a kind had more than mirrordv1alpha1.MaxTargetsPerQuery objects.
	Truncated bool `json:"truncated,omitempty"`
	// Problem says why the member gives no answer (a namespace its admin excludes).
	Problem string `json:"problem,omitempty"`
}

// HelloKind says which kind of session a Hello names.
type HelloKind string

// The kinds of session a connection can serve.
const (
	HelloAgent          HelloKind = ""
	HelloSession        HelloKind = "MirrordSession"
	HelloClusterSession HelloKind = "MirrordClusterSession"
	// HelloHeartbeat: the CLI says its session is alive. The Primary's relay checks the
	// session key's proof, records the heartbeat by its own clock and closes the connection.
	HelloHeartbeat HelloKind = "Heartbeat"
	// HelloTargets: the Primary asks a member's relay for one namespace's targets; the
	// member writes a TargetsAnswer on a stream of its own and closes the connection.
	HelloTargets HelloKind = "Targets"
)

// Challenge is the server's first message: a fresh nonce the session key signs, so a
// recorded Hello cannot be replayed.
type Challenge struct {
	Nonce []byte `json:"nonce"`
}

// proofContext separates these signatures from any other use of the key.
const proofContext = "kubectl-mirrord session proof v1\x00"

func proofMessage(nonce []byte, session string) []byte {
	return append(append([]byte(proofContext), nonce...), session...)
}

// Prove signs the server's nonce for session with the session key.
func Prove(key ed25519.PrivateKey, nonce []byte, session string) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, proofMessage(nonce, session)))
}

// VerifyProof checks that proof was made by the holder of publicKey (base64, as in a
// session's spec.publicKey) for nonce and session.
func VerifyProof(publicKey string, nonce []byte, session, proof string) error {
	pub, err := base64.StdEncoding.DecodeString(publicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return errors.New("the session has no valid spec.publicKey: it was not created by kubectl mirrord exec")
	}
	sig, err := base64.StdEncoding.DecodeString(proof)
	if err != nil || !ed25519.Verify(ed25519.PublicKey(pub), proofMessage(nonce, session), sig) {
		return errors.New("the session key's proof does not match spec.publicKey: only the process that created the session can attach to it")
	}
	return nil
}

// Welcome is the answer to a Hello.
type Welcome struct {
	Version uint16 `json:"version"`
	Error   string `json:"error,omitempty"`
	// Proof is an agent's MAC of the Hello by the agent key (DialAgent).
	Proof []byte `json:"proof,omitempty"`
}

// WriteMessage writes v as a 4-byte big-endian length and its JSON.
func WriteMessage(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeRaw(w, b)
}

// writeRaw writes the message b, already encoded.
func writeRaw(w io.Writer, b []byte) error {
	if len(b) > MaxMessage {
		return fmt.Errorf("protocol: message of %d bytes exceeds %d", len(b), MaxMessage)
	}
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err := w.Write(append(buf, b...))
	return err
}

// WriteBuffered runs write (Request.Write, Response.Write: they write line by line) into a
// buffer and hands w the result in as few writes as the buffer allows: every write would
// otherwise be a frame on a multiplexed stream, and a packet at each hop after it.
func WriteBuffered(w io.Writer, write func(io.Writer) error) error {
	bw, release := MessageWriter(w)
	defer release()
	if err := write(bw); err != nil {
		return err
	}
	return bw.Flush()
}

// ReadMessage reads one message written by WriteMessage into v, refusing unknown fields.
func ReadMessage(r io.Reader, v any) error { return readMessage(r, v, MaxMessage) }

// readMessage reads one message of at most max bytes into v.
func readMessage(r io.Reader, v any, max uint32) error {
	b, err := readRaw(r, max)
	if err != nil {
		return err
	}
	return decodeStrict(b, v)
}

// readRaw reads one message of at most max bytes. Memory grows with the bytes that arrive,
// not with the length the peer declares: a peer that declares a megabyte and sends nothing
// costs nothing.
func readRaw(r io.Reader, max uint32) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(l[:])
	if n > max {
		return nil, fmt.Errorf("protocol: message of %d bytes exceeds %d", n, max)
	}
	var buf bytes.Buffer
	buf.Grow(int(min(n, 4<<10)))
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		return nil, fmt.Errorf("protocol: short message: %w", err)
	}
	return buf.Bytes(), nil
}

// decodeStrict decodes one JSON message, refusing unknown fields and trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("protocol: bad message: %w", err)
	}
	if dec.More() {
		return errors.New("protocol: bad message: trailing data")
	}
	return nil
}

// handshakeTimeout bounds the handshake: a silent peer does not hold a connection.
const handshakeTimeout = 10 * time.Second

// writeHead writes the magic and the version.
func writeHead(w io.Writer) error {
	_, err := w.Write(binary.BigEndian.AppendUint16([]byte(magic), Version))
	return err
}

// readHead reads the magic and the peer's version.
func readHead(r io.Reader) (uint16, error) {
	var b [len(magic) + 2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, fmt.Errorf("protocol: no handshake: %w", err)
	}
	if string(b[:len(magic)]) != magic {
		return 0, errors.New("protocol: the peer does not speak the mirrord session protocol")
	}
	return binary.BigEndian.Uint16(b[len(magic):]), nil
}

// Dial runs the client side of the handshake on conn and returns the multiplexed session.
// When key is set, the Hello carries its proof of the server's challenge.
func Dial(conn net.Conn, hello Hello, key ed25519.PrivateKey) (*yamux.Session, error) {
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	br, nonce, err := clientOpen(conn)
	if err != nil {
		return nil, err
	}
	if key != nil {
		hello.Proof = Prove(key, nonce, hello.Session)
	}
	if err := WriteMessage(conn, hello); err != nil {
		return nil, err
	}
	var w Welcome
	if err := ReadMessage(br, &w); err != nil {
		return nil, err
	}
	if w.Error != "" {
		return nil, &RefusedError{Reason: w.Error}
	}
	_ = conn.SetDeadline(time.Time{})
	return yamux.Client(coalesce(&bufferedConn{Conn: conn, r: br}, conn), muxConfig())
}

// RefusedError is the peer's reason for refusing a Hello.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "refused by the peer: " + e.Reason }

// Accept runs the server side of the handshake on conn; check decides whether the Hello,
// answering the challenge nonce, is allowed (its error is sent back). It returns the Hello
// and the multiplexed session.
func Accept(conn net.Conn, check func(h Hello, nonce []byte) error) (Hello, *yamux.Session, error) {
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	var hello Hello
	br, nonce, err := serverOpen(conn)
	if err != nil {
		return hello, nil, err
	}
	if err := readMessage(br, &hello, MaxHello); err != nil {
		return hello, nil, err
	}
	var refuse error
	if check != nil {
		refuse = check(hello, nonce)
	}
	w := Welcome{Version: Version}
	if refuse != nil {
		w.Error = refuse.Error()
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

func muxConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	c.LogOutput = io.Discard
	c.MaxStreamWindowSize = 1 << 20 // room for bulk transfers per stream
	// A connection that went silent (a dropped network, a peer killed without a FIN) is found
	// within KeepAliveInterval+ConnectionWriteTimeout (15 s) rather than the default 40 s.
	c.KeepAliveInterval = 5 * time.Second
	return c
}

// bufferedConn keeps what the handshake's reader already buffered.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
