package member

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// agentJob is agent Job name, made at second created, owned by the given sessions.
func agentJob(name string, created int, owners ...types.UID) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(time.Unix(int64(created), 0))}}
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
		job  *batchv1.Job
		want joinAction
	}{
		"no Job":                         {nil, joinCreate},
		"a Job being deleted":            {deleting(agentJob("a", 1, "other")), joinWait},
		"another session's Job":          {agentJob("a", 1, "other"), joinAdd},
		"a Job the session already owns": {agentJob("a", 1, "other", "me"), joinHave},
	} {
		t.Run(name, func(t *testing.T) {
			if got := decideJoin(tc.job, "me"); got != tc.want {
				t.Errorf("decideJoin = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestServingJob(t *testing.T) {
	old, young := agentJob("b-old", 1), agentJob("a-young", 2)
	twin := agentJob("a-twin", 1)
	gone := deleting(agentJob("c-gone", 0))
	for name, tc := range map[string]struct {
		jobs []*batchv1.Job
		want *batchv1.Job
	}{
		"none":                                {nil, nil},
		"the oldest of two live ones":         {[]*batchv1.Job{young, old}, old},
		"made in the same second: by name":    {[]*batchv1.Job{old, twin}, twin},
		"a live one over one being deleted":   {[]*batchv1.Job{gone, young}, young},
		"only one being deleted: wait for it": {[]*batchv1.Job{gone}, gone},
	} {
		t.Run(name, func(t *testing.T) {
			if got := servingJob(tc.jobs); got != tc.want {
				t.Errorf("servingJob = %v, want %v", got, tc.want)
			}
		})
	}
}
