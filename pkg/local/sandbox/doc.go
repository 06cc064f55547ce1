// Package sandbox runs the developer's command in new user, network, mount and UTS
// namespaces: its network is a TUN device whose other end the CLI serves (every TCP/UDP
// flow and DNS query goes through the session), /etc/resolv.conf is the target's, and
// chosen ports of the developer's machine stay reachable on its 127.0.0.1. No LD_PRELOAD:
// static binaries, Python, Node, anything work the same.
//
// The CLI re-executes itself as the namespaces' first process (InitArg), which sets them up,
// hands the TUN and listener file descriptors back over a socket, waits for the go-ahead
// and then becomes the command with execve.
package sandbox

// InitArg is the hidden first argument that makes the binary the sandbox's init.
const InitArg = "__mirrord-sandbox-init"

// Addresses inside the sandbox. 198.18.0.0/15 is reserved for benchmarking (RFC 2544):
// nothing real lives there.
const (
	// ChildIP is the command's address on its TUN device; incoming connections arrive here.
	ChildIP = "198.18.0.1"
	// DNSIP is the nameserver in the command's resolv.conf; the CLI answers it.
	DNSIP = "198.18.0.53"
	// DeliveryMark marks the parent's delivery sockets (SO_MARK) and the command's answers
	// on them (see deliveryRouting).
	DeliveryMark  = 0x6d69
	deliveryTable = 0x6d69

	// ChildIP6 is the command's IPv6 address.
	ChildIP6 = "fd6d:6972:726f:7264::1"
	// MTU is large: netstack's throughput falls by 8x at 1500.
	MTU = 65520
)
