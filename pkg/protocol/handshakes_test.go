package protocol

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestHandshakesBounded: silent connections hold at most MaxConcurrentHandshakes handshakes;
// the next connection is closed at once, and one gets through again as soon as a slot frees.
func TestHandshakesBounded(t *testing.T) {
	h := NewHandshakes(2)
	accept := func(c net.Conn) chan error {
		done := make(chan error, 1)
		go func() { _, _, err := h.Accept(c, nil); done <- err }()
		return done
	}
	// Two silent peers: their handshakes wait.
	var silent []net.Conn
	var waiting []chan error
	for range 2 {
		client, server := net.Pipe()
		silent = append(silent, client)
		waiting = append(waiting, accept(server))
	}
	time.Sleep(50 * time.Millisecond)
	// The third is refused at once, and its connection closed.
	client, server := net.Pipe()
	select {
	case err := <-accept(server):
		if !errors.Is(err, ErrBusy) {
			t.Fatalf("third handshake: %v, want %v", err, ErrBusy)
		}
	case <-time.After(time.Second):
		t.Fatal("the third handshake waited instead of being refused")
	}
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Error("the refused connection is still open")
	}
	if h.Refused() != 1 {
		t.Errorf("Refused() = %d, want 1", h.Refused())
	}
	// A silent peer leaves: its slot serves the next one, which completes its handshake.
	silent[0].Close()
	<-waiting[0]
	client, server = net.Pipe()
	done := accept(server)
	if _, err := Dial(client, Hello{Session: "ns/s"}, nil); err != nil {
		t.Fatalf("a handshake after a slot freed: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server side: %v", err)
	}
	silent[1].Close()
	<-waiting[1]
}

// TestHelloBounded: before the peer has proved anything, a Hello is at most MaxHello bytes.
func TestHelloBounded(t *testing.T) {
	client, server := net.Pipe()
	done := make(chan error, 1)
	go func() { _, _, err := Accept(server, nil); done <- err }()
	if err := writeHead(client); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, client) }() // the head and the challenge
	go func() { _, _ = client.Write(binary.BigEndian.AppendUint32(nil, MaxHello+1)) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "exceeds 65536") {
			t.Fatalf("a Hello declaring %d bytes: %v, want it refused", MaxHello+1, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the oversized Hello was not refused")
	}
}
