package protocol

import (
	"fmt"
	"io/fs"
)

// Op names an operation; each runs on its own stream.
type Op string

// The operations an agent serves (the Default cluster's stateful ones).
const (
	// OpEnv answers Response.Env.
	OpEnv Op = "env"
	// OpStat (lstat), OpReadDir and OpReadlink answer Stat, Entries and Link for Path.
	OpStat     Op = "stat"
	OpReadDir  Op = "readdir"
	OpReadlink Op = "readlink"
	// OpOpen opens Path with Flags and Mode; the stream then carries FileOps, one Response
	// each, and closing the stream closes the file.
	OpOpen Op = "open"
	// OpMounts answers the target container's volume mounts in Mounts.
	OpMounts Op = "mounts"
	// OpResolvConf answers the target's /etc/resolv.conf in Data.
	OpResolvConf Op = "resolvconf"
	// OpDNS sends the DNS query in Data from the target's network and answers in Data.
	OpDNS Op = "dns"
	// OpDial connects to Address over Network ("tcp" or "udp") from the target's network;
	// after an OK Response the stream carries the connection's bytes (UDP: each datagram
	// prefixed with its 2-byte big-endian length).
	OpDial Op = "dial"
	// OpIncoming subscribes to the target's incoming traffic as the session's features say
	// (mirror or steal, ports, HTTP filter: the agent's configuration, not the request,
	// decides). The stream stays open while subscribed; the agent opens one stream back per
	// delivery, each starting with an Incoming message (see IncomingKind).
	OpIncoming Op = "incoming"
)

// IncomingKind says what a stream the agent opens carries after its Incoming header.
type IncomingKind string

const (
	// IncomingMirror: the bytes a client sent to the target, read-only; the target answers.
	IncomingMirror IncomingKind = "mirror"
	// IncomingConn: a stolen connection, both ways: the session answers everything on it.
	IncomingConn IncomingKind = "connection"
	// IncomingRequest: stolen HTTP requests of one client connection (HTTP/1.1 wire format,
	// body included), one at a time: the session writes one HTTP/1.1 response back for each
	// before the next is sent; the agent closes the stream when it sends no more.
	IncomingRequest IncomingKind = "request"
)

// Incoming heads each stream the agent opens for a subscription.
type Incoming struct {
	Kind IncomingKind `json:"kind"`
	// Client and Server are the connection's addresses (IP:port); Server's port is the
	// target port it was sent to.
	Client string `json:"client"`
	Server string `json:"server"`
}

// Request opens a stream.
type Request struct {
	Op      Op     `json:"op"`
	Path    string `json:"path,omitempty"`
	Flags   int    `json:"flags,omitempty"`
	Mode    uint32 `json:"mode,omitempty"`
	Network string `json:"network,omitempty"`
	Address string `json:"address,omitempty"`
	Data    []byte `json:"data,omitempty"`
}

// Validate rejects a request no server could serve, before any work.
func (r Request) Validate() error {
	switch r.Op {
	case OpEnv, OpResolvConf, OpIncoming, OpMounts:
	case OpStat, OpReadDir, OpReadlink, OpOpen:
		if r.Path == "" || r.Path[0] != '/' {
			return fmt.Errorf("%s: path %q must be absolute", r.Op, r.Path)
		}
	case OpDNS:
		if len(r.Data) < 12 {
			return fmt.Errorf("dns: query of %d bytes is shorter than a DNS header", len(r.Data))
		}
	case OpDial:
		if r.Network != "tcp" && r.Network != "udp" {
			return fmt.Errorf("dial: network %q: want tcp or udp", r.Network)
		}
		if r.Address == "" {
			return fmt.Errorf("dial: no address")
		}
	default:
		return fmt.Errorf("unknown operation %q: the peer is newer; use the same kubectl-mirrord version on both", r.Op)
	}
	return nil
}

// FileOp is one operation on an open file.
type FileOp struct {
	// Op is "read" (Length bytes at Offset), "write" (Data at Offset) or "stat".
	Op     string `json:"op"`
	Offset int64  `json:"offset,omitempty"`
	Length int    `json:"length,omitempty"`
	Data   []byte `json:"data,omitempty"`
}

// MaxRead bounds one read of an open file.
const MaxRead = 512 << 10

// Response answers a Request or a FileOp.
type Response struct {
	// Error is why it failed; Errno is the errno to give the local process, when one fits.
	Error   string            `json:"error,omitempty"`
	Errno   int               `json:"errno,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Stat    *Stat             `json:"stat,omitempty"`
	Entries []DirEntry        `json:"entries,omitempty"`
	Link    string            `json:"link,omitempty"`
	Mounts  []Mount           `json:"mounts,omitempty"`
	Data    []byte            `json:"data,omitempty"`
	// N is the bytes written by a write.
	N int `json:"n,omitempty"`
}

// Stat is what lstat(2) says of a file.
type Stat struct {
	Mode  uint32 `json:"mode"` // type and permission bits as in st_mode
	Size  int64  `json:"size"`
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	Nlink uint64 `json:"nlink"`
	Ino   uint64 `json:"ino"`
	// Mtime, Atime and Ctime are nanoseconds since the epoch.
	Mtime int64 `json:"mtime"`
	Atime int64 `json:"atime"`
	Ctime int64 `json:"ctime"`
}

// Mount is a volume mounted in the target container: a directory, or one file (subPath).
type Mount struct {
	Path string `json:"path"`
	Dir  bool   `json:"dir"`
}

// DirEntry is one entry of a directory.
type DirEntry struct {
	Name string      `json:"name"`
	Type fs.FileMode `json:"type"`
}
