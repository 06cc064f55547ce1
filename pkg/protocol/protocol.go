// Package protocol is the session protocol, the same at every hop (CLI, Primary, member,
// agent): one connection, a versioned handshake, then yamux multiplexing with one stream per
// operation, so a slow file read or connection never blocks another. Every stream opens with
// a length-prefixed JSON Request; the answer is a Response, followed for some operations by
// raw bytes (a dialled connection) or more messages (an open file).
package protocol

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/yamux"
)

// Version is this side's protocol version; peers must speak the same major version.
const Version uint16 = 1

// magic opens every connection, so a peer that is not a mirrord endpoint fails at once.
const magic = "MIRRORD\x00"

// MaxMessage bounds one message: a peer cannot make the other allocate more.
const MaxMessage = 1 << 20

// Hello is what the connecting side says first.
type Hello struct {
	// Session is namespace/name of the session this connection serves.
	Session string `json:"session"`
	// Token proves the connecting side may speak for the session.
	Token string `json:"token,omitempty"`
}

// Welcome is the answer to a Hello.
type Welcome struct {
	Version uint16 `json:"version"`
	Error   string `json:"error,omitempty"`
}

// WriteMessage writes v as a 4-byte big-endian length and its JSON.
func WriteMessage(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > MaxMessage {
		return fmt.Errorf("protocol: message of %d bytes exceeds %d", len(b), MaxMessage)
	}
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err = w.Write(append(buf, b...))
	return err
}

// ReadMessage reads one message written by WriteMessage into v, refusing unknown fields.
func ReadMessage(r io.Reader, v any) error {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(l[:])
	if n > MaxMessage {
		return fmt.Errorf("protocol: message of %d bytes exceeds %d", n, MaxMessage)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("protocol: short message: %w", err)
	}
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
func Dial(conn net.Conn, hello Hello) (*yamux.Session, error) {
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := writeHead(conn); err != nil {
		return nil, err
	}
	if err := WriteMessage(conn, hello); err != nil {
		return nil, err
	}
	br := bufio.NewReader(conn)
	v, err := readHead(br)
	if err != nil {
		return nil, err
	}
	var w Welcome
	if err := ReadMessage(br, &w); err != nil {
		return nil, err
	}
	if w.Error != "" {
		return nil, fmt.Errorf("refused by the peer: %s", w.Error)
	}
	if v != Version {
		return nil, fmt.Errorf("protocol version %d here, %d at the peer: use the same kubectl-mirrord version on both", Version, v)
	}
	_ = conn.SetDeadline(time.Time{})
	return yamux.Client(&bufferedConn{Conn: conn, r: br}, muxConfig())
}

// Accept runs the server side of the handshake on conn; check decides whether the Hello is
// allowed (its error is sent back). It returns the Hello and the multiplexed session.
func Accept(conn net.Conn, check func(Hello) error) (Hello, *yamux.Session, error) {
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	br := bufio.NewReader(conn)
	var hello Hello
	v, err := readHead(br)
	if err != nil {
		return hello, nil, err
	}
	if err := ReadMessage(br, &hello); err != nil {
		return hello, nil, err
	}
	if err := writeHead(conn); err != nil {
		return hello, nil, err
	}
	var refuse error
	switch {
	case v != Version:
		refuse = fmt.Errorf("protocol version %d at the client, %d here: use the same kubectl-mirrord version on both", v, Version)
	case check != nil:
		refuse = check(hello)
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
	s, err := yamux.Server(&bufferedConn{Conn: conn, r: br}, muxConfig())
	return hello, s, err
}

func muxConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	c.LogOutput = io.Discard
	c.MaxStreamWindowSize = 1 << 20 // room for bulk transfers per stream
	return c
}

// bufferedConn keeps what the handshake's reader already buffered.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
