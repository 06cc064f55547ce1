package primary

import (
	"context"
	"fmt"
	"regexp"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	membercontroller "github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/member"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/naming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/worker"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/dbbranch"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/policy"
)

// Database branches where the Primary is not the Default cluster: each MirrordDBBranch the
// Primary holds is copied into the Default's own namespace with the Primary's member
// credentials (as child sessions are), that cluster's controller makes the branch from the
// copy, and the copy's status (phase, reason, message, endpoint) comes back here; the
// Primary's branchlife keeps the sessions and expiry beside it. A branch deleted here is
// deleted there; one deleted while the Default was unreachable goes with the orphan sweep
// once it is back, and a Default whose Primary went silent deletes the copies itself after
// their TTL (member/dbbranch.go). Where the Primary is the Default, nothing is copied: its
// own member controller makes the branch.

// EventBranchCopied is the event on a branch whose copy was made in the Default cluster.
const EventBranchCopied = "CopiedToDefault"

// maxCopiedMessage bounds a message the Default cluster reports for a branch.
const maxCopiedMessage = 1024

// defaultView is what the Primary knows of its Default cluster for a branch.
type defaultView struct {
	name      string // "" when no Default cluster is registered
	reachable bool
	why       string // why it is not reachable
}

// branchHost is the shape of a branch's Service host in namespace ns (naming.DBBranch).
func branchHost(ns string) *regexp.Regexp {
	return regexp.MustCompile(`^mirrord-db-[0-9a-f]{12}\.` + regexp.QuoteMeta(ns) + `\.svc$`)
}

// copiedState is branch b's Default part of the status, from its copy cp in the Default cluster
// d (nil while there is none). What a member reports is checked, not trusted: a phase and
// reason of the API's, a bounded message, and a Ready endpoint that is a branch Service in the
// target's namespace on the engine's port.
func copiedState(b, cp *mirrordv1alpha1.MirrordDBBranch, d defaultView) membercontroller.BranchState {
	pending := func(reason, msg string) membercontroller.BranchState {
		return membercontroller.BranchState{Phase: mirrordv1alpha1.DBBranchPending, Reason: reason, Message: msg}
	}
	switch {
	case d.name == "":
		return pending(mirrordv1alpha1.ReasonBranchSyncing, "no Default cluster is registered, where branches are made: an admin registers one (kubectl mirrord cluster register --default)")
	case !d.reachable:
		return pending(mirrordv1alpha1.ReasonClusterUnreachable, fmt.Sprintf("the Default cluster %s is unreachable (%s): the branch is made there once it answers", d.name, d.why))
	case cp == nil:
		return pending(mirrordv1alpha1.ReasonBranchSyncing, "copying the branch to the Default cluster "+d.name)
	}
	st := cp.Status
	msg := st.Message
	if len(msg) > maxCopiedMessage {
		msg = msg[:maxCopiedMessage] + "..."
	}
	bad := func(why string) membercontroller.BranchState {
		return membercontroller.BranchState{Phase: mirrordv1alpha1.DBBranchFailed, Reason: mirrordv1alpha1.ReasonBranchBadReport,
			Message: fmt.Sprintf("the Default cluster %s reported %s for the branch: its controller is not kubectl-mirrord's, or another version's", d.name, why)}
	}
	if !knownBranchReasons[st.Reason] && st.Phase != "" {
		return bad(fmt.Sprintf("an unknown reason %q", st.Reason))
	}
	switch st.Phase {
	case "":
		return pending(mirrordv1alpha1.ReasonBranchSyncing, "waiting for the Default cluster "+d.name+" to start the branch")
	case mirrordv1alpha1.DBBranchPending:
		return pending(st.Reason, msg)
	case mirrordv1alpha1.DBBranchFailed:
		return membercontroller.BranchState{Phase: st.Phase, Reason: st.Reason, Message: msg}
	case mirrordv1alpha1.DBBranchReady:
		e := st.Endpoint
		switch {
		case e == nil:
			return bad("Ready without an endpoint")
		case !branchHost(b.Spec.Target.Namespace).MatchString(e.Host):
			return bad(fmt.Sprintf("an endpoint host %q that is no branch Service of namespace %s", e.Host, b.Spec.Target.Namespace))
		case int(e.Port) != dbbranch.DefaultPort(b.Spec.Engine):
			return bad(fmt.Sprintf("port %d, not %s's", e.Port, b.Spec.Engine))
		case e.Database != b.Spec.Database:
			return bad(fmt.Sprintf("database %q, not %q", e.Database, b.Spec.Database))
		}
		return membercontroller.BranchState{Phase: st.Phase, Reason: st.Reason, Message: msg, Endpoint: e.DeepCopy()}
	}
	return bad(fmt.Sprintf("an unknown phase %q", st.Phase))
}

// knownBranchReasons are the reasons a Default's controller gives a branch.
var knownBranchReasons = map[string]bool{
	mirrordv1alpha1.ReasonBranchSeeding: true, mirrordv1alpha1.ReasonBranchReady: true, mirrordv1alpha1.ReasonBranchCopyFailed: true,
	mirrordv1alpha1.ReasonBranchPodFailed: true, mirrordv1alpha1.ReasonBranchTimeout: true, mirrordv1alpha1.ReasonBranchSourceUnknown: true,
	mirrordv1alpha1.ReasonTargetNotFound: true, mirrordv1alpha1.ReasonBlockedByPolicy: true, mirrordv1alpha1.ReasonTargetOutsideNamespace: true,
	mirrordv1alpha1.ReasonNamespaceExcluded: true, mirrordv1alpha1.ReasonTargetForbidden: true,
}

// constructBranchCopy is branch b's copy in the Default cluster's namespace ns.
func constructBranchCopy(primary string, b *mirrordv1alpha1.MirrordDBBranch, ns string) *mirrordv1alpha1.MirrordDBBranch {
	return &mirrordv1alpha1.MirrordDBBranch{
		ObjectMeta: metav1.ObjectMeta{
			Name: naming.DBBranchCopy(primary, b.Namespace, b.Name, b.UID), Namespace: ns,
			Labels: map[string]string{
				mirrordv1alpha1.LabelPrimary:         primary,
				mirrordv1alpha1.LabelParentUID:       string(b.UID),
				mirrordv1alpha1.LabelParentNamespace: b.Namespace,
				mirrordv1alpha1.LabelParentName:      b.Name,
			},
		},
		Spec: *b.Spec.DeepCopy(),
	}
}

// defaultMember is the Default cluster when it is another cluster than this Primary, and what
// the Primary knows of it.
func (c *Controller) defaultMember() (*member, defaultView) {
	for _, m := range c.sortedMembers() {
		if m.has(mirrordv1alpha1.ClusterRoleDefault) {
			reachable, why := m.state()
			if m.kube == nil {
				reachable = false
			}
			if why == "" {
				why = "not probed yet"
			}
			return m, defaultView{name: m.name, reachable: reachable, why: why}
		}
	}
	return nil, defaultView{}
}

// enqueueAllBranches looks at every branch again: the Default cluster changed, or answers again.
func (c *Controller) enqueueAllBranches() {
	if c.roles.Default {
		return
	}
	all, _ := c.branches.List(labels.Everything())
	for _, b := range all {
		worker.Enqueue(c.branchQueue, b)
	}
}

// syncBranch keeps branch key's copy in the Default cluster, and its status from the copy.
func (c *Controller) syncBranch(ctx context.Context, key cache.ObjectName) error {
	if c.roles.Default {
		return nil // this cluster's member controller makes its branches
	}
	m, view := c.defaultMember()
	b, err := c.branches.MirrordDBBranches(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) || (err == nil && (b.DeletionTimestamp != nil || b.Status.Phase == mirrordv1alpha1.DBBranchFailed)) {
		// Gone, or failed (which keeps nothing in the Default): its copies go, once the
		// Default answers; until then this comes back (the orphan sweep would too, later).
		if m != nil && !copiesKnown(m) {
			return &worker.Requeue{After: 5 * time.Second}
		}
		return c.deleteBranchCopies(ctx, m, key, "")
	}
	if err != nil {
		return err
	}
	if m != nil && copiesKnown(m) {
		if err := c.deleteBranchCopies(ctx, m, key, b.UID); err != nil { // of an earlier branch of the name
			return err
		}
	}
	if ps, err := c.policiesFor(b.Spec.Target.Namespace); err == nil {
		if v := policy.CheckBranch(ps, b.Spec.Target, c.labelsOf(b.Spec.Target), b.Spec.Copy.Mode); v != nil {
			return membercontroller.WriteBranchStatus(ctx, c.mirrord, b, membercontroller.BranchState{Phase: mirrordv1alpha1.DBBranchFailed, Reason: mirrordv1alpha1.ReasonBlockedByPolicy, Message: v.Error()})
		}
	}
	var cp *mirrordv1alpha1.MirrordDBBranch
	if m != nil && view.reachable && m.branchCopies != nil {
		if !m.branchCopiesSynced() {
			return &worker.Requeue{After: 200 * time.Millisecond}
		}
		name := naming.DBBranchCopy(c.roles.ClusterName, b.Namespace, b.Name, b.UID)
		cp, err = m.branchCopies.MirrordDBBranches(m.namespace).Get(name)
		if apierrors.IsNotFound(err) {
			cp, err = m.mirrord.MirrordV1alpha1().MirrordDBBranches(m.namespace).Create(ctx, constructBranchCopy(c.roles.ClusterName, b, m.namespace), metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return nil // the informer is behind; its event brings us back
			}
			if err != nil {
				return fmt.Errorf("copying branch %s to the Default cluster %s: %w", key, m.name, describeProbeErr(err))
			}
			c.recorder.Eventf(b, corev1.EventTypeNormal, EventBranchCopied, "Copied to the Default cluster %s as %s/%s, where it is made", m.name, cp.Namespace, cp.Name)
		} else if err != nil {
			return err
		}
	}
	return membercontroller.WriteBranchStatus(ctx, c.mirrord, b, copiedState(b, cp, view))
}

// copiesKnown says whether the Primary knows the copies in the Default cluster m: m answers,
// and its copies' cache is filled.
func copiesKnown(m *member) bool {
	reachable, _ := m.state()
	return reachable && m.branchCopies != nil && m.branchCopiesSynced()
}

// deleteBranchCopies deletes the copies in the Default cluster m (known, or nil) of the branch
// named key, except that of keep (the branch of that name now).
func (c *Controller) deleteBranchCopies(ctx context.Context, m *member, key cache.ObjectName, keep types.UID) error {
	if m == nil {
		return nil
	}
	copies, err := m.branchCopies.MirrordDBBranches(m.namespace).List(labels.SelectorFromSet(labels.Set{
		mirrordv1alpha1.LabelParentNamespace: key.Namespace, mirrordv1alpha1.LabelParentName: key.Name}))
	if err != nil {
		return err
	}
	for _, cp := range copies {
		if types.UID(cp.Labels[mirrordv1alpha1.LabelParentUID]) == keep || cp.DeletionTimestamp != nil {
			continue
		}
		err := m.mirrord.MirrordV1alpha1().MirrordDBBranches(cp.Namespace).Delete(ctx, cp.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cp.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting branch %s's copy in the Default cluster %s: %w", key, m.name, describeProbeErr(err))
		}
		klog.FromContext(ctx).V(1).Info("Deleted a branch's copy in the Default cluster", "branch", key, "cluster", m.name, "copy", klog.KObj(cp))
	}
	return nil
}

// sweepBranchCopies deletes the copies in the Default cluster m whose branch is gone from the
// Primary (deleted while m was unreachable, or while this controller was away).
func (c *Controller) sweepBranchCopies(ctx context.Context, m *member) {
	if !copiesKnown(m) {
		return
	}
	copies, err := m.branchCopies.List(labels.Everything())
	if err != nil {
		return
	}
	for _, cp := range copies {
		b, err := c.branches.MirrordDBBranches(cp.Labels[mirrordv1alpha1.LabelParentNamespace]).Get(cp.Labels[mirrordv1alpha1.LabelParentName])
		if err == nil && string(b.UID) == cp.Labels[mirrordv1alpha1.LabelParentUID] && b.Status.Phase != mirrordv1alpha1.DBBranchFailed {
			continue
		}
		if err != nil && !apierrors.IsNotFound(err) {
			continue
		}
		klog.FromContext(ctx).Info("Deleting an orphaned branch copy", "cluster", m.name, "copy", klog.KObj(cp))
		_ = m.mirrord.MirrordV1alpha1().MirrordDBBranches(cp.Namespace).Delete(ctx, cp.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cp.UID}})
	}
}
