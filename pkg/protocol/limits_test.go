package protocol

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// TestStreamsBounded: a peer holding the most streams at once gets the limit's error on the
// next one, at once, while the others carry on; a closed stream frees its slot.
func TestStreamsBounded(t *testing.T) {
	a, b := net.Pipe()
	server, err := yamux.Server(a, muxConfig())
	if err != nil {
		t.Fatal(err)
	}
	client, err := yamux.Client(b, muxConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	go acceptStreams(server, 3, func(st *yamux.Stream) {
		var req Request
		if ReadMessage(st, &req) != nil {
			return
		}
		_ = WriteMessage(st, Response{})
		_, _ = io.Copy(io.Discard, st) // held until the peer closes it
	})
	before := LimitHits(LimitStreams)
	ask := func() (*yamux.Stream, Response, error) {
		st, err := client.OpenStream()
		if err != nil {
			return nil, Response{}, err
		}
		if err := WriteMessage(st, Request{Op: OpEnv}); err != nil {
			return nil, Response{}, err
		}
		var resp Response
		return st, resp, ReadMessage(st, &resp)
	}
	var held []*yamux.Stream
	for i := range 3 {
		st, resp, err := ask()
		if err != nil || resp.Error != "" {
			t.Fatalf("stream %d: %v %q", i+1, err, resp.Error)
		}
		held = append(held, st)
	}
	_, resp, err := ask()
	if err != nil || !strings.Contains(resp.Error, "limit streams_per_connection (3) reached") {
		t.Fatalf("stream 4: %v %q, want the limit", err, resp.Error)
	}
	if LimitHits(LimitStreams) != before+1 {
		t.Error("the hit was not counted")
	}
	held[0].Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, resp, err = ask(); err != nil {
			t.Fatal(err)
		}
		if resp.Error == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after a stream closed: %q", resp.Error)
		}
	}
}
