package outgoing

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestResolvConfCandidates(t *testing.T) {
	rc := ParseResolvConf([]byte("nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local\noptions ndots:5 timeout:1\n"))
	if rc.Ndots != 5 || len(rc.Search) != 2 {
		t.Fatalf("parsed %+v", rc)
	}
	for host, want := range map[string][]string{
		"api":                         {"api.shop.svc.cluster.local.", "api.svc.cluster.local.", "api."},
		"api.shop.svc.cluster.local.": {"api.shop.svc.cluster.local."},
		"a.b.c.d.e.example.com":       {"a.b.c.d.e.example.com.", "a.b.c.d.e.example.com.shop.svc.cluster.local.", "a.b.c.d.e.example.com.svc.cluster.local."},
	} {
		if d := cmp.Diff(want, rc.candidates(host)); d != "" {
			t.Errorf("%s (-want +got):\n%s", host, d)
		}
	}
	if rc := ParseResolvConf(nil); rc.Ndots != 1 {
		t.Errorf("default ndots %d, want 1", rc.Ndots)
	}
}
