package agent

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// TestPermit: what a session switched off, the agent refuses, whatever the client asks.
func TestPermit(t *testing.T) {
	var all mirrordv1alpha1.Features // defaults: everything on, fs read
	none := mirrordv1alpha1.Features{
		Env: mirrordv1alpha1.EnvFeature{Disabled: true},
		FS:  mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeLocal},
		Network: mirrordv1alpha1.NetworkFeature{
			Incoming: mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeOff},
			Outgoing: mirrordv1alpha1.OutgoingFeature{TCP: ptr.To(false), UDP: ptr.To(false)},
			DNS:      mirrordv1alpha1.DNSFeature{Disabled: true},
		},
	}
	localWithOverride := none
	localWithOverride.FS.ReadOnly = []string{"^/etc/app/"}
	tcpOnly := all
	tcpOnly.Network.Outgoing.UDP = ptr.To(false)
	for name, tc := range map[string]struct {
		f       mirrordv1alpha1.Features
		req     protocol.Request
		wantErr string
	}{
		"env on":                   {f: all, req: protocol.Request{Op: protocol.OpEnv}},
		"env off":                  {f: none, req: protocol.Request{Op: protocol.OpEnv}, wantErr: "feature.env"},
		"mounts with files":        {f: all, req: protocol.Request{Op: protocol.OpMounts}},
		"mounts with fs local":     {f: none, req: protocol.Request{Op: protocol.OpMounts}, wantErr: "feature.fs.mode local"},
		"mounts, local + override": {f: localWithOverride, req: protocol.Request{Op: protocol.OpMounts}},
		"dns on":                   {f: all, req: protocol.Request{Op: protocol.OpDNS}},
		"dns off":                  {f: none, req: protocol.Request{Op: protocol.OpDNS}, wantErr: "feature.network.dns"},
		"resolv.conf with dns off": {f: none, req: protocol.Request{Op: protocol.OpResolvConf}, wantErr: "feature.network.dns"},
		"tcp dial on":              {f: tcpOnly, req: protocol.Request{Op: protocol.OpDial, Network: "tcp", Address: "10.0.0.1:80"}},
		"udp dial off, tcp on":     {f: tcpOnly, req: protocol.Request{Op: protocol.OpDial, Network: "udp", Address: "10.0.0.1:53"}, wantErr: "outgoing.udp"},
		"tcp dial off":             {f: none, req: protocol.Request{Op: protocol.OpDial, Network: "tcp", Address: "10.0.0.1:80"}, wantErr: "outgoing.tcp"},
		"incoming on":              {f: all, req: protocol.Request{Op: protocol.OpIncoming}},
		"incoming off":             {f: none, req: protocol.Request{Op: protocol.OpIncoming}, wantErr: "incoming.mode off"},
		"file ops are per path":    {f: none, req: protocol.Request{Op: protocol.OpStat, Path: "/etc/passwd"}},
	} {
		t.Run(name, func(t *testing.T) {
			err := permit(tc.f, tc.req)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want one naming %q", err, tc.wantErr)
			}
		})
	}
}
