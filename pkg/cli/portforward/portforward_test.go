package portforward

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestParseForward(t *testing.T) {
	for in, want := range map[string]Forward{
		"5432:postgres:5432":         {LocalPort: 5432, Host: "postgres", RemotePort: 5432},
		"8080:api.shop.svc:80":       {LocalPort: 8080, Host: "api.shop.svc", RemotePort: 80},
		"redis:6379":                 {LocalPort: 6379, Host: "redis", RemotePort: 6379},
		"10.96.0.10:53":              {LocalPort: 53, Host: "10.96.0.10", RemotePort: 53},
		"9000:10.96.0.10:53":         {LocalPort: 9000, Host: "10.96.0.10", RemotePort: 53},
		"[fd00::1]:80":               {LocalPort: 80, Host: "fd00::1", RemotePort: 80},
		"8443:[fd00::1]:443":         {LocalPort: 8443, Host: "fd00::1", RemotePort: 443},
		"7000:db-0.db.data.svc:5432": {LocalPort: 7000, Host: "db-0.db.data.svc", RemotePort: 5432},
	} {
		got, err := ParseForward(in)
		if err != nil || got != want {
			t.Errorf("ParseForward(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, why := range map[string]string{
		"postgres":       "not HOST:PORT",
		"80:90":          "no host",
		":80":            "no host",
		"8080:api:0":     "remote port",
		"8080:api:http":  "remote port",
		"70000:api:80":   "not HOST:PORT", // 70000 is no port: the whole is host 70000:api, port 80
		"api:80:90":      "not HOST:PORT",
		"8080:api:80:90": "not HOST:PORT",
		"0:api:80":       "local port",
	} {
		_, err := ParseForward(in)
		if err == nil || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "[LOCAL_PORT:]HOST:REMOTE_PORT") {
			t.Errorf("ParseForward(%q) = %v, want an error saying %q and the form", in, err, why)
		}
	}
}

// TestForwardFeatures: a port-forward asks for outgoing traffic and DNS only, whatever the
// config file says of the rest (a policy blocking files or the environment lets it run).
func TestForwardFeatures(t *testing.T) {
	var f mirrordv1alpha1.Features
	f.Env.Include = []string{"A"}
	f.FS.Mode = mirrordv1alpha1.FSModeWrite
	f.FS.ReadOnly = []string{"^/etc"}
	f.Network.Incoming.Mode = mirrordv1alpha1.IncomingModeSteal
	f.Network.Outgoing.TCP = ptr.To(false)
	f.Network.DNS.Disabled = true
	got := forwardFeatures(f, nil)
	n := got.Network
	if !got.Env.Disabled || len(got.Env.Include) > 0 || got.FS.ReadsRemotely() || n.Incoming.Mode != mirrordv1alpha1.IncomingModeOff ||
		!*n.Outgoing.TCP || n.DNS.Disabled || n.Outgoing.Filter != nil {
		t.Errorf("forwardFeatures = %+v", got)
	}
}

func TestParseReverse(t *testing.T) {
	for in, want := range map[string]Reverse{
		"80:8080": {RemotePort: 80, LocalPort: 8080},
		"8080":    {RemotePort: 8080, LocalPort: 8080},
	} {
		if got, err := ParseReverse(in); err != nil || got != want {
			t.Errorf("ParseReverse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "http", "80:", ":80", "0:80", "80:70000", "a:b:c"} {
		if _, err := ParseReverse(in); err == nil || !strings.Contains(err.Error(), "[REMOTE_PORT:]LOCAL_PORT") {
			t.Errorf("ParseReverse(%q) = %v, want an error with the form", in, err)
		}
	}
}

// TestForwardFeaturesReverse: -R asks for the incoming traffic of its ports only, in the
// config's mode (mirror when it says none or off), each delivered to its local port.
func TestForwardFeaturesReverse(t *testing.T) {
	var f mirrordv1alpha1.Features
	f.Network.Incoming = mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeSteal, HTTPFilter: &mirrordv1alpha1.HTTPFilter{Path: "^/api"}, IgnorePorts: []int32{9090}}
	in := forwardFeatures(f, []Reverse{{80, 8080}, {443, 8443}}).Network.Incoming
	if in.Mode != mirrordv1alpha1.IncomingModeSteal || in.HTTPFilter.Path != "^/api" || len(in.IgnorePorts) != 0 ||
		len(in.Ports) != 2 || in.Ports[1] != 443 || in.PortMapping[0] != (mirrordv1alpha1.PortMapping{Remote: 80, Local: 8080}) {
		t.Errorf("incoming = %+v", in)
	}
	f.Network.Incoming = mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeOff}
	if m := forwardFeatures(f, []Reverse{{80, 80}}).Network.Incoming.Mode; m != mirrordv1alpha1.IncomingModeMirror {
		t.Errorf("-R with incoming off: mode %s, want mirror", m)
	}
}
