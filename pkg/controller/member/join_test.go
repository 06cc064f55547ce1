package member

import (
	"slices"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
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

func TestOwnersToWake(t *testing.T) {
	ref := func(name string) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: childKind.GroupVersion().String(), Kind: childKind.Kind, Name: name, UID: types.UID("uid-" + name)}
	}
	job := func(owners ...string) *batchv1.Job {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "agent", Generation: 1, Labels: map[string]string{"a": "b"}}}
		for _, o := range owners {
			j.OwnerReferences = append(j.OwnerReferences, ref(o))
		}
		return j
	}
	with := func(j *batchv1.Job, f func(*batchv1.Job)) *batchv1.Job { f(j); return j }
	for _, tc := range []struct {
		name     string
		old, new *batchv1.Job
		want     []string
	}{
		{"a join wakes the joiner only", job("a", "b"), job("a", "b", "c"), []string{"c"}},
		{"a leave wakes the leaver only", job("a", "b", "c"), job("a", "c"), []string{"b"}},
		{"a resync wakes nobody", job("a", "b"), job("a", "b"), nil},
		{"a status change wakes every owner", job("a", "b"), with(job("a", "b"), func(j *batchv1.Job) { j.Status.Ready = ptr.To[int32](1) }), []string{"a", "b"}},
		{"a deletion wakes every owner", job("a", "b"), with(job("a", "b"), func(j *batchv1.Job) { j.DeletionTimestamp = ptr.To(metav1.NewTime(time.Unix(1, 0))) }), []string{"a", "b"}},
		{"a spec change wakes every owner", job("a"), with(job("a", "b"), func(j *batchv1.Job) { j.Generation = 2 }), []string{"a", "b"}},
		{"a label change wakes every owner", job("a"), with(job("a"), func(j *batchv1.Job) { j.Labels = nil }), []string{"a"}},
		{"other owners are no sessions", job("a"), with(job("a"), func(j *batchv1.Job) {
			j.OwnerReferences = append(j.OwnerReferences, metav1.OwnerReference{Kind: "Pod", Name: "p", UID: "p"})
		}), nil},
	} {
		if got := ownersToWake(tc.old, tc.new); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
