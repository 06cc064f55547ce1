package member

import (
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/policy"
)

// weighed is a child session as this cluster's policies leave it.
type weighed struct {
	// res is the target's resolution, made terminal when no agent could serve the features.
	res resolution
	// violation is the policy that blocks the session here, if one does.
	violation *policy.Violation
	// features are what the agents serve: the session's, restricted by the policies.
	features mirrordv1alpha1.Features
}

// weigh decides what this cluster's policies make of a child session whose target resolved
// to res: blocked, or its features restricted; and features no agent could serve fail the
// session here, not at its first connection (the agent checks again at the handshake).
func weigh(spec mirrordv1alpha1.MirrordClusterSessionSpec, res resolution, policies []policy.Policy) weighed {
	w := weighed{res: res, features: spec.Features}
	w.violation = policy.Check(policies, spec.Target, res.Labels, spec.Features)
	if w.violation != nil {
		return w
	}
	w.features = policy.Restrict(policies, spec.Target, res.Labels, spec.Features)
	if err := agentconfig.ValidateFeatures(w.features); err != nil && !res.Terminal {
		w.res.Reason, w.res.Terminal, w.res.Message = mirrordv1alpha1.ReasonInvalidFeatures, true, err.Error()
	}
	return w
}
