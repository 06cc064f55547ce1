package naming

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestNamesAreValidAndDistinct(t *testing.T) {
	long := strings.Repeat("a", 63)
	seen := map[string]bool{}
	for _, c := range []struct{ primary, ns, name, uid string }{
		{"c1", "shop", "api-x7k2", "u1"},
		{"c1", "shop", "api-x7k2", "u2"}, // same name, new session
		{"c9", "shop", "api-x7k2", "u1"}, // other Primary
		{"c1", long, long, "u1"},
	} {
		cs := ClusterSession(c.primary, c.ns, c.name, types.UID(c.uid))
		if errs := validation.IsDNS1123Subdomain(cs); len(errs) > 0 || len(cs) > 63 {
			t.Errorf("ClusterSession %q invalid: %v", cs, errs)
		}
		if seen[cs] {
			t.Errorf("ClusterSession %q repeats", cs)
		}
		seen[cs] = true
	}
	// One agent per pod and container: a new pod of the same name, or another container, is
	// another agent.
	for _, a := range []struct{ pod, uid, container string }{
		{"api-7d9f-x2", "u1", "app"}, {"api-7d9f-x2", "u2", "app"}, {"api-7d9f-x2", "u1", "sidecar"}, {long, "u1", "app"},
	} {
		j := AgentJob(a.pod, types.UID(a.uid), a.container, "x7k2p")
		if errs := validation.IsDNS1123Label(j); len(errs) > 0 {
			t.Errorf("AgentJob %q invalid: %v", j, errs)
		}
		if seen[j] {
			t.Errorf("AgentJob %q repeats", j)
		}
		seen[j] = true
	}
	if AgentJob("p", "u1", "app", "aaaaa") == AgentJob("p", "u1", "app", "bbbbb") {
		t.Error("AgentJob is the same for two generations")
	}
	for _, uid := range []string{"u1", "u2"} {
		j := TargetlessAgent(types.UID(uid), "x7k2p")
		if errs := validation.IsDNS1123Label(j); len(errs) > 0 || seen[j] {
			t.Errorf("TargetlessAgent %q invalid or repeated: %v", j, errs)
		}
		seen[j] = true
	}
	if first, again := ClusterSession("c1", "a", "b", "u"), ClusterSession("c1", "a", "b", "u"); first != again {
		t.Error("ClusterSession is not deterministic")
	}
}
