package protocol

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestMessageRoundTrip(t *testing.T) {
	var b bytes.Buffer
	in := Request{Op: OpDial, Network: "tcp", Address: "10.0.0.1:80", Data: []byte{0, 1, 2}}
	if err := WriteMessage(&b, in); err != nil {
		t.Fatal(err)
	}
	var out Request
	if err := ReadMessage(&b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Op != in.Op || out.Address != in.Address || !bytes.Equal(out.Data, in.Data) {
		t.Errorf("round trip: %+v", out)
	}
}

func TestReadMessageRejects(t *testing.T) {
	frame := func(s string) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s...) }
	for name, tc := range map[string]struct {
		in   []byte
		want string
	}{
		"too long":      {binary.BigEndian.AppendUint32(nil, MaxMessage+1), "exceeds"},
		"short":         {append(binary.BigEndian.AppendUint32(nil, 10), '{'), "short message"},
		"unknown field": {frame(`{"op":"env","bogus":1}`), "unknown field"},
		"trailing":      {frame(`{"op":"env"} {}`), "trailing data"},
		"not json":      {frame(`op=env`), "bad message"},
	} {
		var r Request
		if err := ReadMessage(bytes.NewReader(tc.in), &r); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func TestHandshake(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	a, b := net.Pipe()
	done := make(chan error, 1)
	go func() {
		h, s, err := Accept(b, func(h Hello, nonce []byte) error {
			return VerifyProof(base64.StdEncoding.EncodeToString(pub), nonce, h.Session, h.Proof)
		})
		if err == nil {
			if h.Session != "ns/s" {
				t.Errorf("hello %+v", h)
			}
			st, err := s.AcceptStream()
			if err == nil {
				_, _ = io.Copy(st, st)
				st.Close()
			}
		}
		done <- err
	}()
	s, err := Dial(a, Hello{Session: "ns/s"}, key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = st.Write([]byte("echo"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(st, buf); err != nil || string(buf) != "echo" {
		t.Errorf("stream: %q %v", buf, err)
	}
	s.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestHandshakeRejectsStrangers(t *testing.T) {
	a, b := net.Pipe()
	go func() { _, _ = a.Write([]byte("GET / HTTP/1.1\r\n\r\n")); a.Close() }()
	if _, _, err := Accept(b, nil); err == nil || !strings.Contains(err.Error(), "does not speak the mirrord session protocol") {
		t.Errorf("HTTP on the session port: %v", err)
	}
	// A peer of another version is told so.
	c := &scriptedConn{in: bytes.NewReader(binary.BigEndian.AppendUint16([]byte(magic), Version+1))}
	if _, _, err := Accept(c, nil); err == nil || !strings.Contains(err.Error(), "protocol version 2 at the client, 1 here") {
		t.Errorf("version skew: %v", err)
	}
}

func TestProofRefused(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	a, b := net.Pipe()
	go func() {
		_, _, _ = Accept(b, func(h Hello, nonce []byte) error {
			return VerifyProof(base64.StdEncoding.EncodeToString(pub), nonce, h.Session, h.Proof)
		})
		b.Close()
	}()
	_, err := Dial(a, Hello{Session: "ns/s"}, other)
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "only the process that created the session") {
		t.Errorf("a foreign key: %v", err)
	}
}

// scriptedConn reads a fixed input and discards what is written.
type scriptedConn struct {
	net.Conn
	in *bytes.Reader
}

func (c *scriptedConn) Read(p []byte) (int, error)       { return c.in.Read(p) }
func (c *scriptedConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *scriptedConn) Close() error                     { return nil }
func (c *scriptedConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptedConn) SetWriteDeadline(time.Time) error { return nil }

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		r    Request
		want string
	}{
		{Request{Op: OpStat, Path: "rel"}, "must be absolute"},
		{Request{Op: OpDNS, Data: []byte{1}}, "shorter than a DNS header"},
		{Request{Op: OpDial, Network: "unix", Address: "/x"}, "want tcp or udp"},
		{Request{Op: "teleport"}, `unknown operation "teleport"`},
	} {
		if err := tc.r.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.r, err, tc.want)
		}
	}
}

// FuzzReadMessage: no input crashes the decoders (the agent's and relay's of requests, the
// local side's of answers and deliveries) or makes them read past its length.
func FuzzReadMessage(f *testing.F) {
	var b bytes.Buffer
	_ = WriteMessage(&b, Request{Op: OpOpen, Path: "/etc/hosts", Flags: 2})
	f.Add(b.Bytes())
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var req Request
		if err := ReadMessage(r, &req); err == nil {
			_ = req.Validate()
			var again bytes.Buffer
			if err := WriteMessage(&again, req); err != nil {
				t.Fatalf("a decoded request does not encode: %v", err)
			}
		}
		var op FileOp
		_ = ReadMessage(bytes.NewReader(in), &op)
		// What the local side decodes from upstream: answers, deliveries, handshakes.
		var resp Response
		_ = ReadMessage(bytes.NewReader(in), &resp)
		var inc Incoming
		_ = ReadMessage(bytes.NewReader(in), &inc)
		var w Welcome
		_ = ReadMessage(bytes.NewReader(in), &w)
		var ch Challenge
		_ = ReadMessage(bytes.NewReader(in), &ch)
	})
}

// FuzzAccept: no handshake bytes crash the server side.
func FuzzAccept(f *testing.F) {
	var b bytes.Buffer
	_ = writeHead(&b)
	_ = WriteMessage(&b, Hello{Session: "ns/s", Token: "t"})
	f.Add(b.Bytes())
	f.Add([]byte("MIRRORD\x00\x00\x01\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		_, s, err := Accept(&scriptedConn{in: bytes.NewReader(in)}, func(Hello, []byte) error { return nil })
		if err == nil {
			s.Close()
		}
	})
}
