package member

import (
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// agentJob is an agent Job of target pod podUID owned by the given sessions.
func agentJob(podUID types.UID, owners ...types.UID) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "agent", Labels: map[string]string{mirrordv1alpha1.LabelTargetPodUID: string(podUID)}}}
	for _, o := range owners {
		j.OwnerReferences = append(j.OwnerReferences, metav1.OwnerReference{Kind: childKind.Kind, Name: string(o), UID: o})
	}
	return j
}

func deleting(j *batchv1.Job) *batchv1.Job {
	j.DeletionTimestamp = &metav1.Time{}
	return j
}

func TestDecideJoin(t *testing.T) {
	for name, tc := range map[string]struct {
		job      *batchv1.Job
		leftover int
		want     joinAction
	}{
		"no Job and nothing left of one":                                {nil, 0, joinCreate},
		"no Job, but the Job controller still holds the last one's pod": {nil, 1, joinWait},
		"a Job being deleted":                                           {deleting(agentJob("pod", "other")), 0, joinWait},
		"a Job of an earlier pod of the same name":                      {agentJob("old-pod", "other"), 0, joinWait},
		"another session's Job":                                         {agentJob("pod", "other"), 0, joinAdd},
		"a Job the session already owns":                                {agentJob("pod", "other", "me"), 0, joinHave},
	} {
		t.Run(name, func(t *testing.T) {
			if got := decideJoin(tc.job, tc.leftover, "pod", "me"); got != tc.want {
				t.Errorf("decideJoin = %d, want %d", got, tc.want)
			}
		})
	}
}
