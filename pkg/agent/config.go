// Package agent is the agent that runs, as a Job on the target pod's node, inside the target
// container's namespaces: it serves the session's env, files, DNS and outgoing connections and
// intercepts the target's incoming traffic.
package agent

import (
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/stateful"
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

// validateConfig checks the features the agent will serve, so a bad one ends the agent at
// once with a message naming it (the member controller shows it in the session's status).
func validateConfig(c Config) error {
	if err := stateful.ValidateEnv(c.Features.Env); err != nil {
		return err
	}
	return stateful.ValidateFS(c.Features.FS)
}
