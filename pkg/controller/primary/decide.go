package primary

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// The Primary's decisions on one session are pure functions of what it gathered: admit says
// whether the session may have children at all, aggregate makes its status from its
// children's. The controller gathers their inputs and acts on their verdicts.

// verdict is a session's decided status and what must follow from it.
type verdict struct {
	status mirrordv1alpha1.MirrordSessionStatus
	// removeChildren: the session holds nothing (it failed, now or before).
	removeChildren bool
	// failure is the message of a failure decided now, for a Warning event.
	failure string
	// recheck, when set, is when the decision may change without any event (a grace period
	// ending).
	recheck time.Duration
}

// draft is a session status being decided, for the session's current generation.
type draft struct {
	st  mirrordv1alpha1.MirrordSessionStatus
	gen int64
}

func (d *draft) cond(t string, ok bool, reason, msg string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&d.st.Conditions, metav1.Condition{Type: t, Status: status, Reason: reason, Message: msg, ObservedGeneration: d.gen})
}

// fail ends the session with reason and msg.
func (d *draft) fail(reason, msg string) verdict {
	d.st.Phase = mirrordv1alpha1.SessionFailed
	d.cond(mirrordv1alpha1.ConditionReady, false, reason, msg)
	return verdict{status: d.st, removeChildren: true, failure: msg}
}
