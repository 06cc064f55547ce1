package member

import (
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	w "github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/internal/wrappers"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/policy"
)

func agent(pod string, ready, failed bool) agentReport {
	return agentReport{agent: mirrordv1alpha1.Agent{Pod: pod, Job: "job-" + pod, Ready: ready, Message: "why " + pod}, failed: failed}
}

func TestChildStatus(t *testing.T) {
	child := w.ClusterSession("c", w.Session("shop", "s").Obj()).Obj()
	onePod := resolution{Found: true, Pods: []targetPod{{}}, Reason: mirrordv1alpha1.ReasonResolved, Message: "1 pod"}
	twoPods := resolution{Found: true, Pods: []targetPod{{}, {}}, Reason: mirrordv1alpha1.ReasonResolved, Message: "2 pods"}
	for name, tc := range map[string]struct {
		res       resolution
		violation *policy.Violation
		desired   int
		agents    []agentReport
		phase     mirrordv1alpha1.SessionPhase
		ready     string // the Ready condition's reason
		within    string // in its message
		features  bool   // the status says which features the agents serve
	}{
		"every agent ready": {
			res: twoPods, desired: 2, agents: []agentReport{agent("api-2", true, false), agent("api-1", true, false)},
			phase: mirrordv1alpha1.SessionReady, ready: mirrordv1alpha1.ReasonAgentsReady, within: "2 agent(s) ready", features: true,
		},
		"an agent starting": {
			res: twoPods, desired: 2, agents: []agentReport{agent("api-1", true, false), agent("api-2", false, false)},
			phase: mirrordv1alpha1.SessionPending, ready: mirrordv1alpha1.ReasonAgentsStarting, within: "1 of 2", features: true,
		},
		"an agent not made yet": {
			res: twoPods, desired: 2, agents: []agentReport{agent("api-1", true, false)},
			phase: mirrordv1alpha1.SessionPending, ready: mirrordv1alpha1.ReasonAgentsStarting, within: "1 of 2", features: true,
		},
		"an agent failed": {
			res: twoPods, desired: 2, agents: []agentReport{agent("api-2", false, true), agent("api-1", true, false)},
			phase: mirrordv1alpha1.SessionFailed, ready: mirrordv1alpha1.ReasonAgentFailed, within: "agent for pod api-2 failed: why api-2", features: true,
		},
		"two agents failed: the first by pod name is told": {
			res: twoPods, desired: 2, agents: []agentReport{agent("api-2", false, true), agent("api-1", false, true)},
			phase: mirrordv1alpha1.SessionFailed, ready: mirrordv1alpha1.ReasonAgentFailed, within: "pod api-1", features: true,
		},
		"blocked by a policy": {
			res: onePod, violation: &policy.Violation{Policy: "MirrordPolicy shop/no-steal", Reason: "stealing traffic is blocked"},
			phase: mirrordv1alpha1.SessionFailed, ready: mirrordv1alpha1.ReasonBlockedByPolicy, within: "blocked by MirrordPolicy shop/no-steal",
		},
		"refused by this cluster": {
			res:   resolution{Reason: mirrordv1alpha1.ReasonNamespaceExcluded, Message: "namespace shop is excluded", Terminal: true, refused: true},
			phase: mirrordv1alpha1.SessionFailed, ready: mirrordv1alpha1.ReasonNamespaceExcluded, within: "excluded", features: true,
		},
		"the target is not here": {
			res:   resolution{Reason: mirrordv1alpha1.ReasonTargetNotFound, Message: "no deployment/api here"},
			phase: mirrordv1alpha1.SessionReady, ready: mirrordv1alpha1.ReasonNothingToIntercept, within: "no deployment/api", features: true,
		},
		"the target has no running pod yet": {
			res:   resolution{Found: true, Waiting: 1, Reason: mirrordv1alpha1.ReasonNoRunningPods, Message: "1 pod starting"},
			phase: mirrordv1alpha1.SessionPending, ready: mirrordv1alpha1.ReasonNoRunningPods, within: "starting", features: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			st := childStatus(child, tc.res, tc.violation, mirrordv1alpha1.Features{}, tc.desired, tc.agents)
			c := meta.FindStatusCondition(st.Conditions, mirrordv1alpha1.ConditionReady)
			if st.Phase != tc.phase || c == nil || c.Reason != tc.ready || !strings.Contains(c.Message, tc.within) {
				t.Errorf("phase %s, Ready %+v; want %s, %s with %q", st.Phase, c, tc.phase, tc.ready, tc.within)
			}
			if (st.Features != nil) != tc.features {
				t.Errorf("features %+v, want them said: %v", st.Features, tc.features)
			}
			if len(st.Agents) != len(tc.agents) || (len(st.Agents) > 1 && st.Agents[0].Pod > st.Agents[1].Pod) {
				t.Errorf("agents %+v: want every one, by pod name", st.Agents)
			}
			authorized := meta.IsStatusConditionTrue(st.Conditions, mirrordv1alpha1.ConditionAuthorized)
			allowed := meta.IsStatusConditionTrue(st.Conditions, mirrordv1alpha1.ConditionPolicyAllowed)
			if authorized == tc.res.refused || allowed != (tc.violation == nil) {
				t.Errorf("Authorized %v, PolicyAllowed %v", authorized, allowed)
			}
		})
	}
}

func TestAgentState(t *testing.T) {
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "agent-api-1"}}
	failedJob := job.DeepCopy()
	failedJob.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"}}
	tp := targetPod{Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "api-1"}, Spec: corev1.PodSpec{NodeName: "n1"}}}
	pod := func(phase corev1.PodPhase, ip string, ready bool, waiting string, exit int32) *corev1.Pod {
		p := &corev1.Pod{Status: corev1.PodStatus{Phase: phase, PodIP: ip}}
		if ready {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}
		cs := corev1.ContainerStatus{Name: "agent"}
		if waiting != "" {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: waiting}
		}
		if exit != 0 {
			cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: exit, Reason: "Error", Message: "entering the target's namespaces: operation not permitted"}
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
		return p
	}
	for name, tc := range map[string]struct {
		job     *batchv1.Job
		newest  *corev1.Pod
		serving bool
		ready   bool
		address string
		message string
	}{
		"no pod yet":                       {job: job, message: "agent pod not created yet"},
		"pulling its image":                {job: job, newest: pod(corev1.PodPending, "", false, "ContainerCreating", 0), message: "agent pod Pending: ContainerCreating"},
		"running, not Ready yet":           {job: job, newest: pod(corev1.PodRunning, "10.0.0.9", false, "", 0), address: "10.0.0.9:7100", message: "agent pod Running"},
		"running and serving before Ready": {job: job, newest: pod(corev1.PodRunning, "10.0.0.9", false, "", 0), serving: true, ready: true, address: "10.0.0.9:7100"},
		"Ready":                            {job: job, newest: pod(corev1.PodRunning, "10.0.0.9", true, "", 0), ready: true, address: "10.0.0.9:7100"},
		"the Job gave up, its pod says why": {job: failedJob, newest: pod(corev1.PodFailed, "10.0.0.9", false, "", 1),
			message: "BackoffLimitExceeded: Job has reached the specified backoff limit; last agent pod: exit code 1 (Error): entering the target's namespaces: operation not permitted"},
		"the Job gave up, no pod left": {job: failedJob, message: "BackoffLimitExceeded: Job has reached the specified backoff limit"},
	} {
		t.Run(name, func(t *testing.T) {
			a := agentState(tc.job, tp, tc.newest, tc.serving)
			if a.Ready != tc.ready || a.Address != tc.address || a.Message != tc.message || a.Pod != "api-1" || a.Node != "n1" || a.Job != "agent-api-1" {
				t.Errorf("agent %+v; want ready %v, address %q, message %q", a, tc.ready, tc.address, tc.message)
			}
		})
	}
}

func TestUnwanted(t *testing.T) {
	const me = types.UID("child-uid")
	job := func(name string, pod types.UID, container string, owners ...types.UID) *batchv1.Job {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels:      map[string]string{mirrordv1alpha1.LabelTargetPodUID: string(pod)},
			Annotations: map[string]string{annotationTargetContainer: container}}}
		for _, o := range owners {
			j.OwnerReferences = append(j.OwnerReferences, metav1.OwnerReference{UID: o, Name: string(o)})
		}
		return j
	}
	deleting := job("deleting", "gone", "app", me)
	deleting.DeletionTimestamp = &metav1.Time{}
	desired := map[types.UID]targetPod{"p1": {Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "p1"}}, Container: "app"}}
	jobs := []*batchv1.Job{
		job("wanted", "p1", "app", me),
		job("pod-gone", "p9", "app", me),
		job("other-container", "p1", "sidecar", me),
		job("not-mine", "p9", "app", "other"),
		deleting,
	}
	var got []string
	for _, j := range unwanted(jobs, me, desired) {
		got = append(got, j.Name)
	}
	if strings.Join(got, ",") != "pod-gone,other-container" {
		t.Errorf("unwanted = %v, want the child's Jobs of pods or containers it no longer targets", got)
	}
}
