package member

import (
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/types"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// What an agent Job says it serves: the pod's UID (a label) and the container (an annotation).
const (
	labelTargetPodUID         = mirrordv1alpha1.LabelTargetPodUID
	annotationTargetContainer = mirrordv1alpha1.GroupName + "/target-container"
)

// joinAction is what a session does about the agent Job of one of its target pods.
type joinAction int

const (
	// joinCreate: no live Job serves the pod: make one.
	joinCreate joinAction = iota
	// joinWait: the pod's Job is being deleted: look again shortly, then make a new one.
	joinWait
	// joinAdd: a Job serves the pod; add the session to its owners.
	joinAdd
	// joinHave: the session already owns the Job.
	joinHave
)

// decideJoin says what session child does about job, the Job that serves its target pod (nil
// if there is none).
func decideJoin(job *batchv1.Job, child types.UID) joinAction {
	switch {
	case job == nil:
		return joinCreate
	case job.DeletionTimestamp != nil:
		return joinWait
	case ownedBy(job, child):
		return joinHave
	default:
		return joinAdd
	}
}

// targetKey identifies what an agent serves: one container of one pod (by UID: a new pod of
// the same name is another target).
func targetKey(podUID types.UID, container string) string { return string(podUID) + "/" + container }

// jobTargetKey is targetKey of the pod and container agent Job j serves.
func jobTargetKey(j *batchv1.Job) string {
	return targetKey(types.UID(j.Labels[labelTargetPodUID]), j.Annotations[annotationTargetContainer])
}

// servingJob picks the Job that serves a target among jobs, the Jobs made for it: the oldest
// not being deleted (two made at once, by two leaders in turn, both live; sessions join the
// first), else one being deleted (to wait for), else nil.
func servingJob(jobs []*batchv1.Job) *batchv1.Job {
	var best *batchv1.Job
	older := func(a, b *batchv1.Job) bool {
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	}
	for _, j := range jobs {
		switch {
		case best == nil:
			best = j
		case (best.DeletionTimestamp != nil) != (j.DeletionTimestamp != nil):
			if best.DeletionTimestamp != nil {
				best = j
			}
		case older(j, best):
			best = j
		}
	}
	return best
}
