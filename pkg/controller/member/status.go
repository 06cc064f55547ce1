package member

import (
	"fmt"
	"slices"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/policy"
)

// agentReport is one agent's state, read from its Job and pods.
type agentReport struct {
	agent mirrordv1alpha1.Agent
	// failed: the Job gave up (its pods kept failing, or its deadline passed).
	failed bool
}

// childStatus decides a child session's status: its phase, conditions and agents, from the
// target's resolution, the policy that blocks it (if any), the features its agents serve,
// how many agents it wants and the agents it has.
func childStatus(child *mirrordv1alpha1.MirrordClusterSession, res resolution, violation *policy.Violation,
	features mirrordv1alpha1.Features, desired int, agents []agentReport) mirrordv1alpha1.MirrordClusterSessionStatus {
	st := *child.Status.DeepCopy()
	st.ObservedGeneration = child.Generation
	st.Features = nil
	if violation == nil {
		st.Features = &features
	}
	cond := func(t string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: child.Generation})
	}

	if res.refused {
		cond(mirrordv1alpha1.ConditionAuthorized, false, res.Reason, res.Message)
	} else {
		cond(mirrordv1alpha1.ConditionAuthorized, true, mirrordv1alpha1.ReasonAuthorized, "this cluster allows sessions on the target's namespace")
	}
	if violation != nil {
		cond(mirrordv1alpha1.ConditionPolicyAllowed, false, mirrordv1alpha1.ReasonBlockedByPolicy, violation.Error())
	} else {
		cond(mirrordv1alpha1.ConditionPolicyAllowed, true, mirrordv1alpha1.ReasonAllowed, "no policy blocks this session")
	}
	cond(mirrordv1alpha1.ConditionTargetResolved, res.Found && !res.Terminal && (len(res.Pods) > 0 || res.targetless), res.Reason, res.Message)

	// By pod name, whatever order they came in: the first failed one is the one told.
	agents = slices.Clone(agents)
	slices.SortFunc(agents, func(a, b agentReport) int { return strings.Compare(a.agent.Pod, b.agent.Pod) })
	st.Agents = nil
	st.ReadyAgents = 0
	var failed string
	for _, a := range agents {
		if a.agent.Ready {
			st.ReadyAgents++
		}
		if a.failed && failed == "" {
			failed = fmt.Sprintf("agent for pod %s failed: %s", a.agent.Pod, a.agent.Message)
		}
		st.Agents = append(st.Agents, a.agent)
	}

	switch {
	case violation != nil:
		st.Phase = mirrordv1alpha1.SessionFailed
		cond(mirrordv1alpha1.ConditionReady, false, mirrordv1alpha1.ReasonBlockedByPolicy, violation.Error())
	case res.Terminal:
		st.Phase = mirrordv1alpha1.SessionFailed
		cond(mirrordv1alpha1.ConditionReady, false, res.Reason, res.Message)
	case failed != "":
		st.Phase = mirrordv1alpha1.SessionFailed
		cond(mirrordv1alpha1.ConditionReady, false, mirrordv1alpha1.ReasonAgentFailed, failed)
	case !res.Found:
		// Nothing to intercept in this cluster; the Primary decides whether that is fatal.
		st.Phase = mirrordv1alpha1.SessionReady
		cond(mirrordv1alpha1.ConditionReady, true, mirrordv1alpha1.ReasonNothingToIntercept, res.Message)
	case desired > 0 && int(st.ReadyAgents) == desired:
		st.Phase = mirrordv1alpha1.SessionReady
		cond(mirrordv1alpha1.ConditionReady, true, mirrordv1alpha1.ReasonAgentsReady, fmt.Sprintf("%d agent(s) ready", st.ReadyAgents))
	case desired == 0:
		st.Phase = mirrordv1alpha1.SessionPending
		cond(mirrordv1alpha1.ConditionReady, false, res.Reason, res.Message)
	default:
		st.Phase = mirrordv1alpha1.SessionPending
		cond(mirrordv1alpha1.ConditionReady, false, mirrordv1alpha1.ReasonAgentsStarting, fmt.Sprintf("%d of %d agent(s) ready", st.ReadyAgents, desired))
	}
	return st
}

// agentState is an agent's state as its Job and the Job's newest pod (nil: none yet) show it;
// serving says the agent answered its own readiness check before the kubelet's probe did.
func agentState(j *batchv1.Job, tp targetPod, newest *corev1.Pod, serving bool) mirrordv1alpha1.Agent {
	a := mirrordv1alpha1.Agent{Pod: tp.Pod.Name, Node: tp.Pod.Spec.NodeName, Job: j.Name}
	switch {
	case isJobFailed(j):
		for _, cnd := range j.Status.Conditions {
			if cnd.Type == batchv1.JobFailed {
				a.Message = cnd.Reason + ": " + cnd.Message
			}
		}
		if newest != nil {
			if why := podFailure(newest); why != "" {
				a.Message += "; last agent pod: " + why
			}
		}
	case newest == nil:
		a.Message = "agent pod not created yet"
	default:
		a.Ready = podReady(newest) || serving
		if newest.Status.PodIP != "" {
			a.Address = fmt.Sprintf("%s:%d", newest.Status.PodIP, agentconfig.SessionPort)
		}
		if !a.Ready {
			a.Message = "agent pod " + string(newest.Status.Phase)
			for _, s := range newest.Status.ContainerStatuses {
				if s.State.Waiting != nil && s.State.Waiting.Reason != "" {
					a.Message += ": " + s.State.Waiting.Reason
				}
			}
		}
	}
	return a
}

// unwanted are the Jobs of jobs the child must leave: those it owns, not being deleted, whose
// target pod (or container) is not among desired (gone, or the session is blocked now).
func unwanted(jobs []*batchv1.Job, child types.UID, desired map[types.UID]targetPod) []*batchv1.Job {
	var out []*batchv1.Job
	for _, j := range jobs {
		if !ownedBy(j, child) || j.DeletionTimestamp != nil {
			continue
		}
		if tp, ok := desired[types.UID(j.Labels[mirrordv1alpha1.LabelTargetPodUID])]; ok && jobTargetKey(j) == targetKey(tp.Pod.UID, tp.Container) {
			continue
		}
		out = append(out, j)
	}
	return out
}
