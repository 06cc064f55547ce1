package primary

import (
	"fmt"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/authz"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

// admission is what admit weighs: RBAC's answer for the owner (nil for a target kind RBAC
// cannot name), the Primary's roles, its own policies' word, and its members.
type admission struct {
	access *authz.Access
	// topology says this Primary's cluster roles are invalid.
	topology error
	// violation is a policy of the Primary's that blocks the session (policy.Check).
	violation error
	// profile says why the session does not follow the profile it names ("" when it does).
	profile string
	members int
}

// admit decides whether s may have children now. A verdict ends the decision there (the
// session failed, or waits, degraded, for the Primary's roles to be fixed); without one the
// session goes on to aggregate with d.
func admit(s *mirrordv1alpha1.MirrordSession, in admission) (*draft, *verdict) {
	d := &draft{st: *s.Status.DeepCopy(), gen: s.Generation}
	d.st.ObservedGeneration = s.Generation
	d.st.TargetDescription = target.String(s.Spec.Target)
	d.st.ModeDescription = s.Spec.Features.Network.Incoming.Description()
	stop := func(v verdict) (*draft, *verdict) { return nil, &v }

	// A failed session stays failed (so its owner can read why) and holds nothing.
	if s.Status.Phase == mirrordv1alpha1.SessionFailed {
		return stop(verdict{status: d.st, removeChildren: true})
	}
	// Admission checked the same; a Primary installed without it, or RBAC revoked since,
	// must not let the session reach further than its owner.
	if denied := authz.Primary(s.Namespace, s.Spec, in.access); denied != nil {
		d.cond(mirrordv1alpha1.ConditionAuthorized, false, denied.Reason, denied.Message)
		return stop(d.fail(denied.Reason, denied.Message))
	}
	d.cond(mirrordv1alpha1.ConditionAuthorized, true, mirrordv1alpha1.ReasonAuthorized,
		fmt.Sprintf("%s may run sessions on %s", s.Spec.Owner, target.String(s.Spec.Target)))
	if in.topology != nil {
		msg := "this Primary's cluster roles are invalid: " + in.topology.Error()
		if s.Status.Phase == mirrordv1alpha1.SessionReady || s.Status.Phase == mirrordv1alpha1.SessionDegraded {
			// A running session keeps its children and recovers once the roles are fixed
			// (an admin re-registering a cluster, say); only new sessions fail at once.
			d.st.Phase = mirrordv1alpha1.SessionDegraded
			d.cond(mirrordv1alpha1.ConditionReady, false, mirrordv1alpha1.ReasonInvalidTopology, msg)
			return stop(verdict{status: d.st})
		}
		return stop(d.fail(mirrordv1alpha1.ReasonInvalidTopology, msg))
	}
	// Fast feedback from the Primary's own policies; every member checks again.
	if in.violation != nil {
		d.cond(mirrordv1alpha1.ConditionPolicyAllowed, false, mirrordv1alpha1.ReasonBlockedByPolicy, in.violation.Error())
		return stop(d.fail(mirrordv1alpha1.ReasonBlockedByPolicy, in.violation.Error()))
	}
	if in.profile != "" {
		d.cond(mirrordv1alpha1.ConditionPolicyAllowed, false, mirrordv1alpha1.ReasonProfileNotFollowed, in.profile)
		return stop(d.fail(mirrordv1alpha1.ReasonProfileNotFollowed, in.profile))
	}
	if in.members == 0 {
		return stop(d.fail(mirrordv1alpha1.ReasonNoMembers, "no Workload cluster is registered: an admin must add MirrordCluster objects (kubectl mirrord cluster register)"))
	}
	return d, nil
}
