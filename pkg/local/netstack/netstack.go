// Package netstack is the other end of the sandbox's TUN device: a userspace TCP/IP stack
// (gVisor's) that accepts every TCP connection and UDP flow the command starts, whatever
// its destination, and hands it to a Handler; and that dials into the command for incoming
// connections.
package netstack

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// Handler decides what happens to the command's flows.
type Handler interface {
	// DialTCP connects to dst on the command's behalf; an error refuses the connection.
	DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error)
	// ServeUDP serves one UDP flow (src to dst): conn reads the command's datagrams and
	// writes the answers. It returns when the flow is over.
	ServeUDP(ctx context.Context, conn net.Conn, dst netip.AddrPort)
}

const nicID = 1

// Stack serves a TUN device.
type Stack struct {
	s      *stack.Stack
	ctx    context.Context
	cancel context.CancelFunc
}

// New serves tun with h until Close.
func New(tun *os.File, h Handler) (*Stack, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	ep, err := fdbased.New(&fdbased.Options{FDs: []int{int(tun.Fd())}, MTU: 65520, PacketDispatchMode: fdbased.Readv})
	if err != nil {
		return nil, fmt.Errorf("serving the TUN device: %w", err)
	}
	if e := s.CreateNIC(nicID, ep); e != nil {
		return nil, fmt.Errorf("netstack NIC: %s", e)
	}
	// Accept every destination: the stack stands in for the whole network.
	if e := s.SetPromiscuousMode(nicID, true); e != nil {
		return nil, fmt.Errorf("netstack: %s", e)
	}
	if e := s.SetSpoofing(nicID, true); e != nil {
		return nil, fmt.Errorf("netstack: %s", e)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: nicID}, {Destination: header.IPv6EmptySubnet, NIC: nicID}})
	sack := tcpip.TCPSACKEnabled(true)
	_ = s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	// Room for bulk transfers: the TUN's other end is a kernel on this machine, so the
	// window, not the path, bounds a connection's throughput.
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	_ = s.SetTransportProtocolOption(tcp.ProtocolNumber, &rcv)
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	_ = s.SetTransportProtocolOption(tcp.ProtocolNumber, &snd)
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	_ = s.SetTransportProtocolOption(tcp.ProtocolNumber, &moderate)

	ctx, cancel := context.WithCancel(context.Background())
	st := &Stack{s: s, ctx: ctx, cancel: cancel}
	tcpFwd := tcp.NewForwarder(s, 0, 1024, func(r *tcp.ForwarderRequest) {
		id := r.ID()
		dst := netip.AddrPortFrom(addrOf(id.LocalAddress), id.LocalPort)
		// Dial first: a refused destination is a refused connection for the command too.
		remote, err := h.DialTCP(ctx, dst)
		if err != nil {
			r.Complete(true)
			return
		}
		var wq waiter.Queue
		ep, e := r.CreateEndpoint(&wq)
		if e != nil {
			r.Complete(true)
			remote.Close()
			return
		}
		r.Complete(false)
		ep.SocketOptions().SetKeepAlive(true)
		go protocol.Splice(gonet.NewTCPConn(&wq, ep), remote)
	})
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, tcpFwd.HandlePacket)
	udpFwd := udp.NewForwarder(s, func(r *udp.ForwarderRequest) bool {
		id := r.ID()
		dst := netip.AddrPortFrom(addrOf(id.LocalAddress), id.LocalPort)
		var wq waiter.Queue
		ep, e := r.CreateEndpoint(&wq)
		if e != nil {
			return false
		}
		go func() {
			c := gonet.NewUDPConn(&wq, ep)
			defer c.Close()
			h.ServeUDP(ctx, c, dst)
		}()
		return true
	})
	s.SetTransportProtocolHandler(udp.ProtocolNumber, udpFwd.HandlePacket)
	return st, nil
}

// DialIn connects to the command at dst (its sandbox address), appearing to come from src:
// the command sees the original client's address.
func (st *Stack) DialIn(ctx context.Context, src, dst netip.AddrPort) (net.Conn, error) {
	proto := ipv4.ProtocolNumber
	if dst.Addr().Is6() {
		proto = ipv6.ProtocolNumber
	}
	if !src.Addr().IsValid() || src.Addr().Is4() != dst.Addr().Is4() {
		src = netip.AddrPort{} // the stack picks one
	}
	var local tcpip.FullAddress
	if src.IsValid() {
		local = tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(src.Addr().AsSlice()), Port: src.Port()}
	}
	remote := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(dst.Addr().AsSlice()), Port: dst.Port()}
	if !src.IsValid() {
		return gonet.DialContextTCP(ctx, st.s, remote, proto)
	}
	return gonet.DialTCPWithBind(ctx, st.s, local, remote, proto)
}

// Close stops serving.
func (st *Stack) Close() {
	st.cancel()
	st.s.Close()
	st.s.Wait()
}

func addrOf(a tcpip.Address) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return ip.Unmap()
}
