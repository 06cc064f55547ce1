package relayserver

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// FuzzServeStream sends whatever a session's peer may put on a stream (a CLI is any user who
// holds a session's key) to a relay routing to two upstreams: the relay answers or closes the
// stream within a bound, never panics, and the connection goes on serving the next stream.
func FuzzServeStream(f *testing.F) {
	for _, req := range []protocol.Request{
		{Op: protocol.OpEnv},
		{Op: protocol.OpIncoming},
		{Op: protocol.OpDial, Network: "tcp", Address: "10.0.0.1:80"},
		{Op: protocol.OpOpen, Path: "relative"},
		{Op: "no-such-op"},
	} {
		var b bytes.Buffer
		_ = protocol.WriteMessage(&b, req)
		f.Add(b.Bytes())
		f.Add(append(b.Bytes(), b.Bytes()...)) // a second request on the same stream
	}
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))

	c2, c3 := upstreamServer(f, "c2"), upstreamServer(f, "c3")
	sess := serving(f, staticRoute{def: c2, all: []Upstream{c2, c3}})
	client := protocol.NewClient(sess)
	f.Cleanup(func() { client.Close() })
	f.Fuzz(func(t *testing.T, in []byte) {
		st, err := sess.OpenStream()
		if err != nil {
			t.Fatalf("the relay stopped accepting streams: %v", err)
		}
		defer st.Close()
		_ = st.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = st.Write(in)
		_ = st.Close() // yamux: a half-close; the answer can still be read
		// The relay answers (an error, an env, a subscription) and ends the stream; a
		// subscription lasts until the subscriber closes, which the half-close above did.
		if _, err := io.Copy(io.Discard, st); err != nil {
			t.Fatalf("the relay neither answered nor closed the stream within 5s: %v", err)
		}
		if env, err := client.Env(); err != nil || env["FROM"] != "c2" {
			t.Fatalf("after %q the connection no longer serves: %v %v", in, env, err)
		}
	})
}
