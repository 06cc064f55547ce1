package member

import (
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	psaapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func targetlessChild(uid string) *mirrordv1alpha1.MirrordClusterSession {
	return &mirrordv1alpha1.MirrordClusterSession{
		ObjectMeta: metav1.ObjectMeta{Name: "shop-dev-1a2b3c4d", Namespace: "mirrord-system", UID: k8stypes.UID("child-" + uid)},
		Spec: mirrordv1alpha1.MirrordClusterSessionSpec{
			Parent: mirrordv1alpha1.ParentReference{Namespace: "shop", Name: "dev"},
			Target: mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindTargetless, Namespace: "shop"},
		},
	}
}

// The targetless agent runs in a user's namespace: the restricted Pod Security Standard, the
// one a namespace may enforce, must admit it, as Kubernetes' own checks say.
func TestTargetlessJobMeetsRestrictedPodSecurity(t *testing.T) {
	j, err := constructTargetlessJob("shop", "mirrord-targetless-x", targetlessChild("1"), AgentOptions{Image: "agent:v1", ActiveDeadline: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	eval, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	for _, r := range eval.EvaluatePod(lv, &j.Spec.Template.ObjectMeta, &j.Spec.Template.Spec) {
		if !r.Allowed {
			t.Errorf("restricted Pod Security forbids the targetless agent: %s (%s)", r.ForbiddenReason, r.ForbiddenDetail)
		}
	}
	spec := j.Spec.Template.Spec
	if spec.HostPID || spec.NodeName != "" || len(spec.Tolerations) > 0 {
		t.Errorf("a targetless agent is scheduled like any pod: hostPID %v, nodeName %q, tolerations %v", spec.HostPID, spec.NodeName, spec.Tolerations)
	}
	if got := j.Labels[mirrordv1alpha1.LabelChildUID]; got != "child-1" {
		t.Errorf("child UID label = %q", got)
	}
	if agentconfig.KeySecretOf(spec) != j.Name {
		t.Errorf("the key Secret is %q, want the Job's name %q (the relays' copy has it too)", agentconfig.KeySecretOf(spec), j.Name)
	}
	if !strings.Contains(spec.Containers[0].Env[0].Value, `"targetless":true`) {
		t.Errorf("agent config %s does not say targetless", spec.Containers[0].Env[0].Value)
	}
}

func TestTargetlessObsolete(t *testing.T) {
	job := func(uid string, conds ...batchv1.JobCondition) *batchv1.Job {
		return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{mirrordv1alpha1.LabelChildUID: uid}},
			Status: batchv1.JobStatus{Conditions: conds}}
	}
	ending := targetlessChild("1")
	ending.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	deadline := batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonDeadlineExceeded}
	crashed := batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded}
	for name, tc := range map[string]struct {
		job   *batchv1.Job
		child *mirrordv1alpha1.MirrordClusterSession
		want  string
	}{
		"serving its child":                   {job("child-1"), targetlessChild("1"), ""},
		"its child is gone":                   {job("child-1"), nil, "its session is gone"},
		"a new child of the same name":        {job("child-1"), targetlessChild("2"), "replaced by another"},
		"its child is ending":                 {job("child-1"), ending, "its session is ending"},
		"its deadline passed: a new one":      {job("child-1", deadline), targetlessChild("1"), "active deadline"},
		"crashed: kept, its session says why": {job("child-1", crashed), targetlessChild("1"), ""},
	} {
		t.Run(name, func(t *testing.T) {
			got := targetlessObsolete(tc.job, tc.child)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("targetlessObsolete = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTargetlessResolution(t *testing.T) {
	if r := targetlessResolution(true, "shop"); !r.Found || r.Terminal || !r.targetless || !strings.Contains(r.Message, "namespace shop") {
		t.Errorf("in the Default cluster: %+v", r)
	}
	if r := targetlessResolution(false, "shop"); !r.Terminal || !strings.Contains(r.Message, "only the Default") {
		t.Errorf("elsewhere: %+v", r)
	}
}
