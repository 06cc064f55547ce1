package mirror

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// filterFor assembles a classic BPF program for Ethernet frames that keeps the TCP segments
// (IPv4 without fragments, IPv6 without extension headers) to or from any of ports: both
// directions, so the reassembly sees the server's FIN too.
func filterFor(ports []uint16) ([]bpf.RawInstruction, error) {
	if len(ports) == 0 || len(ports) > 64 {
		return nil, fmt.Errorf("mirror: %d ports: want 1 to 64", len(ports))
	}
	// matchPorts loads the source port (at offset src, relative to X when indirect), then
	// the destination port, and jumps to accept on any match.
	const (
		ethType   = 12
		ip4Proto  = 14 + 9
		ip4Frag   = 14 + 6
		ip6Next   = 14 + 6
		ip6TCP    = 14 + 40
		etherIPv4 = 0x0800
		etherIPv6 = 0x86dd
		protoTCP  = 6
	)
	var prog []bpf.Instruction
	// Placeholders for jumps fixed up below: accept is the second-to-last instruction.
	type fix struct{ at int }
	var toAccept []fix
	portChecks := func(load func(off uint32) bpf.Instruction) {
		for _, off := range []uint32{0, 2} {
			prog = append(prog, load(off))
			for _, p := range ports {
				toAccept = append(toAccept, fix{len(prog)})
				prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(p)})
			}
		}
	}
	// IPv4?
	prog = append(prog, bpf.LoadAbsolute{Off: ethType, Size: 2})
	ipv6At := len(prog)
	prog = append(prog, bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: etherIPv4}) // SkipTrue to IPv6, fixed below
	prog = append(prog,
		bpf.LoadAbsolute{Off: ip4Proto, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoTCP, SkipTrue: 0}, // to drop, fixed below
	)
	dropFixes := []int{len(prog) - 1}
	prog = append(prog,
		bpf.LoadAbsolute{Off: ip4Frag, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff},
	)
	dropFixes = append(dropFixes, len(prog)-1)
	prog = append(prog, bpf.LoadMemShift{Off: 14})
	portChecks(func(off uint32) bpf.Instruction { return bpf.LoadIndirect{Off: 14 + off, Size: 2} })
	dropFixes = append(dropFixes, len(prog))
	prog = append(prog, bpf.Jump{})
	// IPv6.
	ipv6Start := len(prog)
	prog = append(prog, bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: etherIPv6})
	dropFixes = append(dropFixes, len(prog)-1)
	prog = append(prog,
		bpf.LoadAbsolute{Off: ip6Next, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoTCP},
	)
	dropFixes = append(dropFixes, len(prog)-1)
	portChecks(func(off uint32) bpf.Instruction { return bpf.LoadAbsolute{Off: ip6TCP + off, Size: 2} })
	drop := len(prog)
	prog = append(prog, bpf.RetConstant{Val: 0})
	accept := len(prog)
	prog = append(prog, bpf.RetConstant{Val: 262144})

	// The IPv6 branch re-tests the EtherType it already loaded: A still holds it.
	j := prog[ipv6At].(bpf.JumpIf)
	j.SkipTrue = uint8(ipv6Start - ipv6At - 1)
	prog[ipv6At] = j
	for _, at := range dropFixes {
		switch in := prog[at].(type) {
		case bpf.JumpIf:
			if in.Cond == bpf.JumpBitsSet {
				in.SkipTrue = uint8(drop - at - 1)
			} else {
				in.SkipTrue = uint8(drop - at - 1)
			}
			prog[at] = in
		case bpf.Jump:
			prog[at] = bpf.Jump{Skip: uint32(drop - at - 1)}
		}
	}
	for _, f := range toAccept {
		in := prog[f.at].(bpf.JumpIf)
		in.SkipTrue = uint8(accept - f.at - 1)
		prog[f.at] = in
	}
	if accept > 255 {
		return nil, fmt.Errorf("mirror: filter too long for %d ports", len(ports))
	}
	return bpf.Assemble(prog)
}
