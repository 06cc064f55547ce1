// Package agent is the agent that runs, as a Job on the target pod's node, inside the target
// container's namespaces: it serves every session on that target its env, files, DNS and
// outgoing connections, and intercepts the target's incoming traffic for them.
package agent

import (
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
)

// Config is everything an agent needs to know (see agentconfig).
type Config = agentconfig.Config

// The agent's fixed ports.
const (
	SessionPort = agentconfig.SessionPort
	HealthPort  = agentconfig.HealthPort
)

// ConfigFromEnv reads the Config the member controller set.
func ConfigFromEnv() (Config, error) { return agentconfig.ConfigFromEnv() }
