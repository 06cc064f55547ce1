//go:build linux

package steal

import (
	"fmt"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// redirectedTo matches the conntrack entries of TCP connections a redirect sent to port:
// their original destination port differs from the port that answers.
type redirectedTo struct {
	port  uint16
	other bool            // match every redirected entry whose answering port is not in live instead
	live  map[uint16]bool // ports still in use (TCPPortsInUse)
}

func (f redirectedTo) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	if flow.Forward.Protocol != unix.IPPROTO_TCP || flow.Forward.DstPort == flow.Reverse.SrcPort {
		return false
	}
	if f.other {
		return !f.live[flow.Reverse.SrcPort]
	}
	return flow.Reverse.SrcPort == f.port
}

// deleteConntrack removes the entries of nsFd's conntrack table that f matches, for IPv4
// and IPv6, and returns how many it removed.
func deleteConntrack(nsFd int, f netlink.CustomConntrackFilter) (uint, error) {
	h, err := netlink.NewHandleAt(vnetns.NsHandle(nsFd))
	if err != nil {
		return 0, fmt.Errorf("conntrack: %w", err)
	}
	defer h.Close()
	var n uint
	for _, fam := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		m, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, fam, f)
		n += m
		if err != nil {
			return n, fmt.Errorf("conntrack: %w", err)
		}
	}
	return n, nil
}
