package agent

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
)

// nodeAddrs lists the addresses of the node's network namespace, where the kubelet's probes
// come from: the namespace of the containerd shim that runs this agent (containerd and the
// kubelet share it), or PID 1's when there is no shim above the agent.
func nodeAddrs(procRoot string) ([]netip.Addr, error) {
	pid := 1
	if shim, _ := shimAddress(procRoot); shim > 0 {
		pid = shim
	}
	return netnsAddrs(procRoot, pid)
}

// netnsAddrs lists the addresses in process pid's network namespace but loopback ones:
// nothing reaches a pod from those.
func netnsAddrs(procRoot string, pid int) ([]netip.Addr, error) {
	h, err := netns.OfPID(procRoot, pid)
	if err != nil {
		return nil, fmt.Errorf("opening the node's network namespace: %w", err)
	}
	defer h.Close()
	var addrs []netip.Addr
	err = h.Do(func() error {
		ifaddrs, err := net.InterfaceAddrs()
		if err != nil {
			return err
		}
		for _, ia := range ifaddrs {
			ipn, ok := ia.(*net.IPNet)
			if !ok {
				continue
			}
			if a, ok := netip.AddrFromSlice(ipn.IP); ok && !a.Unmap().IsLoopback() {
				addrs = append(addrs, a.Unmap())
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the node's addresses: %w", err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("the node's network namespace (of process %d) has no address", pid)
	}
	return addrs, nil
}
