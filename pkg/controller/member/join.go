package member

import (
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/types"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// joinAction is what a session does about the agent Job of one of its target pods.
type joinAction int

const (
	// joinCreate: no Job of that name, and nothing left of an earlier one: make it.
	joinCreate joinAction = iota
	// joinWait: an earlier Job of that name is still going (being deleted, or the Job
	// controller still holds its pods): look again shortly.
	joinWait
	// joinAdd: the Job runs for this pod; add the session to its owners.
	joinAdd
	// joinHave: the session already owns the Job.
	joinHave
)

// decideJoin says what session child does about Job job (nil if there is none) of target pod
// podUID; leftoverPods is how many pods of an earlier Job of that name the Job controller has
// not let go of yet.
//
// A Job's name comes back for the same pod, so a new Job waits until the Job controller has
// handled the last one's deletion: it keys its bookkeeping by name, and a Job made again
// within milliseconds of the last one's deletion was seen to get a pod built from the old Job
// (then collected as an orphan, its key Secret gone) and none of its own for minutes.
func decideJoin(job *batchv1.Job, leftoverPods int, podUID, child types.UID) joinAction {
	switch {
	case job == nil && leftoverPods > 0:
		return joinWait
	case job == nil:
		return joinCreate
	case job.DeletionTimestamp != nil || types.UID(job.Labels[mirrordv1alpha1.LabelTargetPodUID]) != podUID:
		return joinWait
	case ownedBy(job, child):
		return joinHave
	default:
		return joinAdd
	}
}
