package agent

import (
	"fmt"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// permit decides whether a session with features f (its member's, policies applied) may ask
// req of the agent. The agent is the last component before the data, so it refuses what the
// session switched off whatever its client sends: a modified client gains nothing. Which
// paths a session may read or write is decided per path (stateful.FS.Access).
func permit(f mirrordv1alpha1.Features, req protocol.Request) error {
	off := func(what, setting string) error {
		return fmt.Errorf("%s is switched off for this session (%s)", what, setting)
	}
	switch req.Op {
	case protocol.OpEnv:
		if f.Env.Disabled {
			return off("the target's environment", "feature.env")
		}
	case protocol.OpMounts:
		if !f.FS.ReadsRemotely() {
			return off("the target's files", "feature.fs.mode local")
		}
	case protocol.OpResolvConf, protocol.OpDNS:
		if f.Network.DNS.Disabled {
			return off("DNS from the target", "feature.network.dns")
		}
	case protocol.OpDial:
		out := f.Network.Outgoing
		if req.Network == "udp" && out.UDP != nil && !*out.UDP {
			return off("outgoing UDP from the target", "feature.network.outgoing.udp")
		}
		if req.Network != "udp" && out.TCP != nil && !*out.TCP {
			return off("outgoing TCP from the target", "feature.network.outgoing.tcp")
		}
	case protocol.OpIncoming:
		if f.Network.Incoming.Mode == mirrordv1alpha1.IncomingModeOff {
			return fmt.Errorf("incoming traffic is off for this session (feature.network.incoming.mode off)")
		}
	}
	return nil
}
