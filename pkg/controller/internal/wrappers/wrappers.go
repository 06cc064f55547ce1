// Package wrappers builds the API objects controller tests start from, fluently (as jobset's
// and kueue's test wrappers do): a wrapper starts from a valid object and each call changes
// one thing, so a test case says only what matters to it.
package wrappers

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// SessionWrapper wraps a MirrordSession.
type SessionWrapper struct{ mirrordv1alpha1.MirrordSession }

// Session is alice's session in ns on deployment/api of ns, generation 1, with every feature
// at its default and a 30 s TTL.
func Session(ns, name string) *SessionWrapper {
	return &SessionWrapper{mirrordv1alpha1.MirrordSession{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(name + "-uid"), Generation: 1},
		Spec: mirrordv1alpha1.MirrordSessionSpec{
			Target:     mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: "api", Namespace: ns},
			Owner:      "alice",
			TTLSeconds: 30,
		},
	}}
}

// Obj returns the session.
func (w *SessionWrapper) Obj() *mirrordv1alpha1.MirrordSession { return &w.MirrordSession }

// Target sets the target.
func (w *SessionWrapper) Target(kind mirrordv1alpha1.TargetKind, name, ns string) *SessionWrapper {
	w.Spec.Target = mirrordv1alpha1.Target{Kind: kind, Name: name, Namespace: ns}
	return w
}

// Features sets the features.
func (w *SessionWrapper) Features(f mirrordv1alpha1.Features) *SessionWrapper {
	w.Spec.Features = f
	return w
}

// Phase sets the status' phase.
func (w *SessionWrapper) Phase(p mirrordv1alpha1.SessionPhase) *SessionWrapper {
	w.Status.Phase = p
	return w
}

// Condition sets a status condition.
func (w *SessionWrapper) Condition(t string, ok bool, reason, msg string) *SessionWrapper {
	setCondition(&w.Status.Conditions, t, ok, reason, msg, time.Time{})
	return w
}

// ClusterSessionWrapper wraps a MirrordClusterSession.
type ClusterSessionWrapper struct {
	mirrordv1alpha1.MirrordClusterSession
}

// ClusterSession is a child of parent, with no status yet.
func ClusterSession(name string, parent *mirrordv1alpha1.MirrordSession) *ClusterSessionWrapper {
	return &ClusterSessionWrapper{mirrordv1alpha1.MirrordClusterSession{
		ObjectMeta: metav1.ObjectMeta{Namespace: "mirrord-system", Name: name, UID: types.UID(name + "-uid"), Generation: 1},
		Spec: mirrordv1alpha1.MirrordClusterSessionSpec{
			Parent:     mirrordv1alpha1.ParentReference{Cluster: "primary", Namespace: parent.Namespace, Name: parent.Name, UID: string(parent.UID)},
			Target:     parent.Spec.Target,
			Owner:      parent.Spec.Owner,
			Features:   parent.Spec.Features,
			TTLSeconds: parent.Spec.TTLSeconds,
		},
	}}
}

// Obj returns the child session.
func (w *ClusterSessionWrapper) Obj() *mirrordv1alpha1.MirrordClusterSession {
	return &w.MirrordClusterSession
}

// Phase sets the status' phase.
func (w *ClusterSessionWrapper) Phase(p mirrordv1alpha1.SessionPhase) *ClusterSessionWrapper {
	w.Status.Phase = p
	return w
}

// Condition sets a status condition.
func (w *ClusterSessionWrapper) Condition(t string, ok bool, reason, msg string) *ClusterSessionWrapper {
	setCondition(&w.Status.Conditions, t, ok, reason, msg, time.Time{})
	return w
}

// ConditionSince sets a status condition that last changed at since.
func (w *ClusterSessionWrapper) ConditionSince(t string, ok bool, reason, msg string, since time.Time) *ClusterSessionWrapper {
	setCondition(&w.Status.Conditions, t, ok, reason, msg, since)
	return w
}

func setCondition(conds *[]metav1.Condition, t string, ok bool, reason, msg string, since time.Time) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.RemoveStatusCondition(conds, t)
	meta.SetStatusCondition(conds, metav1.Condition{Type: t, Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.NewTime(since)})
}
