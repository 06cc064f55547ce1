package outgoing

import (
	"net/netip"
	"strings"
	"testing"
)

func TestFilter(t *testing.T) {
	local, err := ParseFilter([]string{"db.local", "10.0.0.0/8:5432", ":6379", "192.168.1.1", "[::1]:80"}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ip     string
		port   uint16
		names  []string
		remote bool
	}{
		{"1.2.3.4", 80, nil, true},
		{"1.2.3.4", 80, []string{"db.local"}, false},
		{"10.1.2.3", 5432, nil, false},
		{"10.1.2.3", 5433, nil, true},
		{"8.8.8.8", 6379, nil, false},
		{"192.168.1.1", 1, nil, false},
		{"::1", 80, nil, false},
		{"::1", 81, nil, true},
	} {
		if got := local.Remote(netip.MustParseAddr(tc.ip), tc.port, tc.names); got != tc.remote {
			t.Errorf("local list: %s:%d %v: remote=%v, want %v", tc.ip, tc.port, tc.names, got, tc.remote)
		}
	}
	if local.RemoteName("DB.local.") {
		t.Error("a local name is resolved remotely")
	}
	remote, _ := ParseFilter([]string{"api.shop.svc"}, true)
	if remote.Remote(netip.MustParseAddr("1.1.1.1"), 443, nil) || !remote.Remote(netip.MustParseAddr("10.96.0.5"), 80, []string{"api.shop.svc"}) {
		t.Error("remote list inverted")
	}
	var none *Filter
	if !none.Remote(netip.MustParseAddr("1.1.1.1"), 1, nil) {
		t.Error("no filter: everything is remote")
	}
	for _, bad := range []string{"host:0", "host:99999", "10.0.0.0/33", ":", "[::1"} {
		if _, err := ParseFilter([]string{bad}, false); err == nil || !strings.Contains(err.Error(), "outgoing filter") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestResolveRemotely(t *testing.T) {
	local, err := ParseFilter([]string{"db.example.com", "cache:6379", ":53"}, false)
	if err != nil {
		t.Fatal(err)
	}
	remote, err := ParseFilter([]string{"api.shop.svc.cluster.local"}, true)
	if err != nil {
		t.Fatal(err)
	}
	var none *Filter
	for _, tc := range []struct {
		f    *Filter
		name string
		want bool
	}{
		{none, "anything.", true},
		{local, "db.example.com.", false},
		{local, "DB.Example.com", false},
		{local, "cache.", false}, // its port is not looked at: a query has none
		{local, "other.example.com.", true},
		{local, "db.example.com.shop.svc.cluster.local.", false}, // the resolver's expansion
		{local, "cache.shop.svc.cluster.local.", false},
		{remote, "api.shop.svc.cluster.local.", true},
		{remote, "google.com.", false},
	} {
		if got := tc.f.ResolveRemotely(tc.name, []string{"shop.svc.cluster.local", "svc.cluster.local"}); got != tc.want {
			t.Errorf("%v.ResolveRemotely(%q) = %v, want %v", tc.f, tc.name, got, tc.want)
		}
	}
}
