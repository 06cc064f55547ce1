package agent

import (
	"bytes"
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

// FuzzPermit: whatever operation a session's client sends, once it decodes and validates,
// a session with everything switched off is refused all of it but file operations on paths
// (decided per path by the fs rules) and its own subscriptions' teardown.
func FuzzPermit(f *testing.F) {
	for _, r := range []protocol.Request{
		{Op: protocol.OpEnv}, {Op: protocol.OpDial, Network: "tcp", Address: "10.0.0.1:80"},
		{Op: protocol.OpDial, Network: "udp", Address: "10.0.0.1:53"}, {Op: protocol.OpDNS, Data: make([]byte, 12)},
		{Op: protocol.OpResolvConf}, {Op: protocol.OpMounts}, {Op: protocol.OpIncoming}, {Op: protocol.OpStat, Path: "/etc"},
	} {
		var b bytes.Buffer
		_ = protocol.WriteMessage(&b, r)
		f.Add(b.Bytes())
	}
	off := mirrordv1alpha1.Features{}
	off.Env.Disabled, off.Network.DNS.Disabled = true, true
	off.FS.Mode = mirrordv1alpha1.FSModeLocal
	off.Network.Outgoing.TCP, off.Network.Outgoing.UDP = ptr.To(false), ptr.To(false)
	off.Network.Incoming.Mode = mirrordv1alpha1.IncomingModeOff
	f.Fuzz(func(t *testing.T, in []byte) {
		var req protocol.Request
		if protocol.ReadMessage(bytes.NewReader(in), &req) != nil || req.Validate() != nil {
			return
		}
		err := permit(off, req)
		switch req.Op {
		case protocol.OpStat, protocol.OpReadDir, protocol.OpReadlink, protocol.OpOpen:
			// Per path, by stateful.FS (local mode refuses every remote path there).
		default:
			if err == nil {
				t.Fatalf("%+v permitted to a session with everything off", req)
			}
		}
	})
}
