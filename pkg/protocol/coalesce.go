package protocol

import (
	"encoding/binary"
	"net"
)

// yamux frame headers: version, type, flags, stream ID, length (12 bytes).
const (
	muxHeaderSize = 12
	muxTypeData   = 0
)

// coalescingConn sends each yamux data frame in one write. yamux writes a frame's header
// and body with two writes: two packets on every hop, and with the API server's proxy in
// the way, two wakeups of each process that relays them. The header of a data frame with a
// body is held until the body's write (yamux's single send loop writes them back to back).
type coalescingConn struct {
	net.Conn
	tcp    *net.TCPConn // the connection underneath, when TCP: header and body go in one writev
	held   bool
	header [muxHeaderSize]byte
	buf    []byte
}

// coalesce wraps c, whose writes go to raw (the same connection without read buffering).
func coalesce(c, raw net.Conn) net.Conn {
	cc := &coalescingConn{Conn: c}
	cc.tcp, _ = raw.(*net.TCPConn)
	return cc
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	if !c.held {
		if len(p) == muxHeaderSize && p[0] == 0 && p[1] == muxTypeData && binary.BigEndian.Uint32(p[8:]) > 0 {
			copy(c.header[:], p)
			c.held = true
			return len(p), nil
		}
		return c.Conn.Write(p)
	}
	c.held = false
	if binary.BigEndian.Uint32(c.header[8:]) != uint32(len(p)) {
		// Not the body announced: send both as they came.
		if _, err := c.Conn.Write(c.header[:]); err != nil {
			return 0, err
		}
		return c.Conn.Write(p)
	}
	if c.tcp != nil {
		bufs := net.Buffers{c.header[:], p}
		if _, err := bufs.WriteTo(c.tcp); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	c.buf = append(append(c.buf[:0], c.header[:]...), p...)
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > 1<<20 {
		c.buf = nil // keep no huge buffer per connection
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}
