package member

import (
	"testing"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
)

func TestAgentEnv(t *testing.T) {
	for name, tc := range map[string]struct {
		maxProcs int
		want     map[string]string
	}{
		"Go's default": {0, map[string]string{agentconfig.ConfigEnv: "{}"}},
		"the default":  {DefaultAgentMaxProcs, map[string]string{agentconfig.ConfigEnv: "{}", "GOMAXPROCS": "1"}},
		"an admin's 4": {4, map[string]string{agentconfig.ConfigEnv: "{}", "GOMAXPROCS": "4"}},
	} {
		t.Run(name, func(t *testing.T) {
			got := map[string]string{}
			for _, e := range agentEnv([]byte("{}"), tc.maxProcs) {
				got[e.Name] = e.Value
			}
			if len(got) != len(tc.want) {
				t.Fatalf("env %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s=%q, want %q", k, got[k], v)
				}
			}
		})
	}
}
