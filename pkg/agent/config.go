// Package agent is the agent that runs, as a Job on the target pod's node, inside the target
// container's namespaces: it serves the session's env, files, DNS and outgoing connections and
// intercepts the target's incoming traffic.
package agent

import (
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
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

// validateFeatures checks the features a session asks the agent to serve, so a bad one is
// refused at the handshake with a message naming it.
func validateFeatures(f mirrordv1alpha1.Features) error { return agentconfig.ValidateFeatures(f) }
