package primary

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

// childReport is one member's part of a session, as the Primary found it there.
type childReport struct {
	member    string
	workload  bool // the member has the Workload role
	isDefault bool // the member has the Default role
	// unreachable: the member cannot be asked now (not probed yet, or its probe failed).
	unreachable bool
	// entry is the member's line in the session's status.
	entry mirrordv1alpha1.SessionClusterStatus
	// child is the session's child there; nil when there is none yet.
	child *mirrordv1alpha1.MirrordClusterSession
}

// noPodsGrace is how long a target with no pods at all (in every cluster where it exists) may
// stay so before the session fails: long enough for a just-created or just-scaled workload
// to get its pods, short enough that a target scaled to zero is a quick, clear error.
const noPodsGrace = 10 * time.Second

// aggregate decides the status of session s, admitted with d, from its children's reports
// (one per member, in the members' order) at now.
func aggregate(s *mirrordv1alpha1.MirrordSession, d *draft, reports []childReport, now time.Time) verdict {
	d.st.Clusters = nil
	var unreachable, notReady, noPods []string
	var failure, defaultMissing, refusedReason string
	var blocked bool // the failing child says a policy blocks it
	workloads, found, foundSure, ready := 0, 0, 0, 0
	var noPodsSince time.Time
	for _, r := range reports {
		d.st.Clusters = append(d.st.Clusters, r.entry)
		if r.unreachable {
			unreachable = append(unreachable, fmt.Sprintf("%s (%s)", r.member, r.entry.Error))
		}
		if r.workload {
			workloads++
		}
		child := r.child
		if child == nil {
			notReady = append(notReady, r.member)
			continue
		}
		resolved := meta.FindStatusCondition(child.Status.Conditions, mirrordv1alpha1.ConditionTargetResolved)
		targetHere := resolved == nil || resolved.Reason != mirrordv1alpha1.ReasonTargetNotFound
		if resolved != nil && targetHere {
			foundSure++ // reported, not only not denied yet
		}
		if targetHere {
			found++
			if resolved != nil && resolved.Reason == mirrordv1alpha1.ReasonNoPods {
				noPods = append(noPods, r.member)
				if resolved.LastTransitionTime.After(noPodsSince) {
					noPodsSince = resolved.LastTransitionTime.Time
				}
			}
		} else if r.isDefault {
			defaultMissing = r.member
		}
		switch child.Status.Phase {
		case mirrordv1alpha1.SessionFailed:
			if failure == "" {
				failure = fmt.Sprintf("cluster %s: %s", r.member, readyMessage(child))
				if a := meta.FindStatusCondition(child.Status.Conditions, mirrordv1alpha1.ConditionAuthorized); a != nil && a.Status == metav1.ConditionFalse {
					refusedReason = a.Reason
				}
				blocked = meta.IsStatusConditionFalse(child.Status.Conditions, mirrordv1alpha1.ConditionPolicyAllowed)
			}
		case mirrordv1alpha1.SessionReady:
			ready++
		default:
			notReady = append(notReady, r.member)
		}
	}
	d.st.ClustersReady = fmt.Sprintf("%d/%d", ready, len(reports))
	d.st.ClustersDescription = mirrordv1alpha1.ClustersDescription(d.st.Clusters)

	if len(unreachable) > 0 {
		d.cond(mirrordv1alpha1.ConditionClustersReachable, false, mirrordv1alpha1.ReasonClusterUnreachable, "unreachable: "+strings.Join(unreachable, "; "))
	} else {
		d.cond(mirrordv1alpha1.ConditionClustersReachable, true, mirrordv1alpha1.ReasonAllReachable, fmt.Sprintf("%d cluster(s) reachable", len(reports)))
	}
	var recheck time.Duration
	allReported := len(notReady) == 0 && len(unreachable) == 0
	switch {
	case failure != "":
		if refusedReason != "" {
			d.cond(mirrordv1alpha1.ConditionAuthorized, false, refusedReason, failure)
		}
		if blocked {
			d.cond(mirrordv1alpha1.ConditionPolicyAllowed, false, mirrordv1alpha1.ReasonBlockedByPolicy, failure)
		}
		return d.fail(mirrordv1alpha1.ReasonClusterFailed, failure)
	case allReported && found == 0:
		msg := fmt.Sprintf("%s not found in namespace %s in any workload cluster (%d checked)", target.String(s.Spec.Target), s.Spec.Target.Namespace, workloads)
		d.cond(mirrordv1alpha1.ConditionTargetResolved, false, mirrordv1alpha1.ReasonTargetNotFound, msg)
		return d.fail(mirrordv1alpha1.ReasonTargetNotFound, msg)
	case len(unreachable) == 0 && found > 0 && len(noPods) == found:
		// The target exists, but nowhere has it a pod, nor one starting.
		waited := now.Sub(noPodsSince)
		if waited >= noPodsGrace {
			msg := fmt.Sprintf("%s has no pods in any workload cluster (%s): scale it up (kubectl scale --replicas=1), or pick another target", target.String(s.Spec.Target), strings.Join(noPods, ", "))
			d.cond(mirrordv1alpha1.ConditionTargetResolved, false, mirrordv1alpha1.ReasonNoPods, msg)
			return d.fail(mirrordv1alpha1.ReasonNoPods, msg)
		}
		recheck = noPodsGrace - waited + 100*time.Millisecond
	}
	if foundSure > 0 && defaultMissing != "" {
		// Decided here, before exec waits on an environment no cluster can give.
		if msg := notInDefault(target.String(s.Spec.Target), defaultMissing, foundSure, s.Spec.Features); msg != "" {
			d.cond(mirrordv1alpha1.ConditionTargetResolved, false, mirrordv1alpha1.ReasonNotInDefault, msg)
			return d.fail(mirrordv1alpha1.ReasonNotInDefault, msg)
		}
	}
	d.cond(mirrordv1alpha1.ConditionPolicyAllowed, true, mirrordv1alpha1.ReasonAllowed, "no policy blocks this session")
	switch {
	case found > 0 && defaultMissing != "":
		// Traffic still works; the stateful operations have no pod to answer from.
		d.cond(mirrordv1alpha1.ConditionTargetResolved, true, mirrordv1alpha1.ReasonNotInDefault, fmt.Sprintf("found in %d cluster(s), but not in the Default cluster %s: the session takes only its traffic", found, defaultMissing))
	case found > 0:
		d.cond(mirrordv1alpha1.ConditionTargetResolved, true, mirrordv1alpha1.ReasonResolved, fmt.Sprintf("found in %d cluster(s)", found))
	default:
		d.cond(mirrordv1alpha1.ConditionTargetResolved, false, mirrordv1alpha1.ReasonResolving, "waiting for clusters to report")
	}
	switch {
	case len(unreachable) > 0:
		d.st.Phase = mirrordv1alpha1.SessionDegraded
		d.cond(mirrordv1alpha1.ConditionReady, false, mirrordv1alpha1.ReasonClusterUnreachable, "unreachable: "+strings.Join(unreachable, "; "))
	case len(notReady) > 0:
		d.st.Phase = mirrordv1alpha1.SessionPending
		d.cond(mirrordv1alpha1.ConditionReady, false, mirrordv1alpha1.ReasonWaitingForClusters, "waiting for "+strings.Join(notReady, ", "))
	default:
		d.st.Phase = mirrordv1alpha1.SessionReady
		d.cond(mirrordv1alpha1.ConditionReady, true, mirrordv1alpha1.ReasonClustersReady, fmt.Sprintf("%d cluster(s) ready", len(reports)))
	}
	return verdict{status: d.st, recheck: recheck}
}

func readyMessage(child *mirrordv1alpha1.MirrordClusterSession) string {
	if c := meta.FindStatusCondition(child.Status.Conditions, mirrordv1alpha1.ConditionReady); c != nil {
		return c.Message
	}
	return string(child.Status.Phase)
}
