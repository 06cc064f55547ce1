package nstest

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
)

// Link is a client network namespace joined to a target's by a veth pair, made inside the
// two namespaces (never in the test's own), so it goes away with them.
type Link struct {
	// Client is the client's namespace: dial the target from it.
	Client *netns.Handle
	// TargetIP and ClientIP are the two ends' addresses.
	TargetIP, ClientIP string
}

var links atomic.Int32

// Connect makes a client namespace and links it to the target.
func Connect(t *testing.T, tg *Target) *Link {
	t.Helper()
	p, err := os.StartProcess("/bin/sleep", []string{"sleep", "3600"}, &os.ProcAttr{Sys: &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill(); _, _ = p.Wait() })
	client, err := netns.OfPID("/proc", p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	target, err := netns.OfPID("/proc", tg.PID)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()

	n := links.Add(1)
	l := &Link{Client: client, TargetIP: fmt.Sprintf("10.213.%d.1", n), ClientIP: fmt.Sprintf("10.213.%d.2", n)}
	th, err := netlink.NewHandleAt(vnetns.NsHandle(target.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer th.Close()
	ch, err := netlink.NewHandleAt(vnetns.NsHandle(client.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(client.Fd())}
	if err := th.LinkAdd(veth); err != nil {
		t.Fatalf("veth: %v", err)
	}
	for _, side := range []struct {
		h    *netlink.Handle
		addr string
	}{{th, l.TargetIP}, {ch, l.ClientIP}} {
		for _, name := range []string{"eth0", "lo"} {
			link, err := side.h.LinkByName(name)
			if err != nil {
				t.Fatal(err)
			}
			if name == "eth0" {
				if err := side.h.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(side.addr), Mask: net.CIDRMask(24, 32)}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := side.h.LinkSetUp(link); err != nil {
				t.Fatal(err)
			}
		}
	}
	return l
}
