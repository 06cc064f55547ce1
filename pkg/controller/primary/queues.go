package primary

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/naming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/worker"
)

// Queue registries (MirrordWorkloadQueueRegistry) are written by admins on the Primary and
// copied into every other Workload cluster's own namespace with the Primary's member
// credentials, where that cluster splits its consumer's queues; edits are copied again, a
// registry deleted here is deleted there (at once, or once an unreachable member answers),
// and each cluster's state comes back into the registry's status. A Primary that is also a
// Workload reads its own registries in place.

// registryCopyState is what the Primary knows of one Workload cluster for a registry.
type registryCopyState struct {
	cluster   string
	self      bool
	reachable bool
	why       string
	copy      *mirrordv1alpha1.MirrordWorkloadQueueRegistry // nil: none there
}

// registryStatus is registry r's status from its clusters' states, in cluster order, and
// the sessions of its namespace (those splitting its consumer's queues are counted: in all,
// and per cluster where each's queues are ready).
func registryStatus(r *mirrordv1alpha1.MirrordWorkloadQueueRegistry, clusters []registryCopyState, sessions []*mirrordv1alpha1.MirrordSession) mirrordv1alpha1.MirrordWorkloadQueueRegistryStatus {
	st := mirrordv1alpha1.MirrordWorkloadQueueRegistryStatus{ObservedGeneration: r.Generation, Conditions: slices.Clone(r.Status.Conditions)}
	readyIn := map[string]int32{}
	for _, s := range sessions {
		if !splitsRegistry(s, r) {
			continue
		}
		st.Splits++
		for _, c := range s.Status.Clusters {
			if len(c.Queues) > 0 && !slices.ContainsFunc(c.Queues, func(q mirrordv1alpha1.SessionQueueStatus) bool { return !q.Ready }) {
				readyIn[c.Name]++
			}
		}
	}
	var behind []string
	for _, c := range clusters {
		cs := mirrordv1alpha1.QueueRegistryClusterStatus{Name: c.cluster, Splits: readyIn[c.cluster]}
		switch {
		case c.self:
			cs.Synced, cs.Message = true, "this Primary's own registry"
		case !c.reachable:
			cs.Message = "unreachable (" + c.why + "): copied once it answers"
		case c.copy == nil:
			cs.Message = "copying"
		case !reflect.DeepEqual(c.copy.Spec, r.Spec):
			cs.Message = "copying the current spec"
		default:
			cs.Synced, cs.Message = true, "holds the current spec"
		}
		if !cs.Synced {
			behind = append(behind, c.cluster)
		}
		st.Clusters = append(st.Clusters, cs)
	}
	cond := metav1.Condition{Type: mirrordv1alpha1.ConditionSynced, Status: metav1.ConditionTrue, Reason: mirrordv1alpha1.ReasonAllSynced,
		Message: "every Workload cluster holds the current spec", ObservedGeneration: r.Generation}
	switch {
	case len(clusters) == 0:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, mirrordv1alpha1.ReasonNoMembers, "no Workload cluster is registered"
	case len(behind) > 0:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, mirrordv1alpha1.ReasonClusterUnreachable, fmt.Sprintf("not yet in %v", behind)
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	return st
}

// splitsRegistry says whether live session s splits queues of registry r's consumer.
func splitsRegistry(s *mirrordv1alpha1.MirrordSession, r *mirrordv1alpha1.MirrordWorkloadQueueRegistry) bool {
	t := s.Spec.Target
	if s.DeletionTimestamp != nil || s.Namespace != r.Namespace || t.Kind != mirrordv1alpha1.TargetKindDeployment || t.Name != r.Spec.Consumer.Name {
		return false
	}
	return slices.ContainsFunc(s.Spec.Features.SplitQueues, func(q mirrordv1alpha1.QueueSplitRequest) bool {
		_, ok := r.Spec.Queues[q.QueueID]
		return ok
	})
}

// enqueueRegistriesOf wakes the registries a session splits, whose status counts it.
func (c *Controller) enqueueRegistriesOf(obj any) {
	s, ok := obj.(*mirrordv1alpha1.MirrordSession)
	if !ok || len(s.Spec.Features.SplitQueues) == 0 {
		return
	}
	if r := c.consumerRegistry(s.Spec.Target); r != nil {
		c.registryQueue.Add(cache.NewObjectName(r.Namespace, r.Name))
	}
}

// constructRegistryCopy is registry r's copy in a Workload cluster's namespace ns.
func constructRegistryCopy(primary string, r *mirrordv1alpha1.MirrordWorkloadQueueRegistry, ns string) *mirrordv1alpha1.MirrordWorkloadQueueRegistry {
	return &mirrordv1alpha1.MirrordWorkloadQueueRegistry{
		ObjectMeta: metav1.ObjectMeta{
			Name: naming.QueueRegistryCopy(primary, r.Namespace, r.Name, r.UID), Namespace: ns,
			Labels: map[string]string{
				mirrordv1alpha1.LabelPrimary:         primary,
				mirrordv1alpha1.LabelParentUID:       string(r.UID),
				mirrordv1alpha1.LabelParentNamespace: r.Namespace,
				mirrordv1alpha1.LabelParentName:      r.Name,
			},
		},
		Spec: *r.Spec.DeepCopy(),
	}
}

// workloadMembers are the Workload clusters, in name order.
func (c *Controller) workloadMembers() []*member {
	var out []*member
	for _, m := range c.sortedMembers() {
		if m.has(mirrordv1alpha1.ClusterRoleWorkload) {
			out = append(out, m)
		}
	}
	return out
}

// registriesKnown says whether the Primary knows the registry copies in member m.
func registriesKnown(m *member) bool {
	reachable, _ := m.state()
	return reachable && m.registryCopies != nil && m.registryCopiesSynced()
}

func (c *Controller) enqueueAllRegistries() {
	all, _ := c.registries.List(labels.Everything())
	for _, r := range all {
		worker.Enqueue(c.registryQueue, r)
	}
}

// syncRegistry keeps registry key's copies in the Workload clusters, and its status from them.
func (c *Controller) syncRegistry(ctx context.Context, key cache.ObjectName) error {
	r, err := c.registries.MirrordWorkloadQueueRegistries(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) || (err == nil && r.DeletionTimestamp != nil) {
		var errs error
		for _, m := range c.workloadMembers() {
			if m.self {
				continue
			}
			if !registriesKnown(m) {
				return &worker.Requeue{After: 5 * time.Second} // its copies go once it answers
			}
			errs = errors.Join(errs, c.deleteRegistryCopies(ctx, m, key, ""))
		}
		return errs
	}
	if err != nil {
		return err
	}
	var states []registryCopyState
	var errs error
	notRead := false // a member answers, but its copies are not read yet: look again shortly
	for _, m := range c.workloadMembers() {
		reachable, why := m.state()
		st := registryCopyState{cluster: m.name, self: m.self, reachable: reachable && m.kube != nil, why: why}
		if !m.self && registriesKnown(m) {
			if err := c.deleteRegistryCopies(ctx, m, key, r.UID); err != nil { // of an earlier registry of the name
				errs = errors.Join(errs, err)
			}
			st.copy, err = c.ensureRegistryCopy(ctx, m, r)
			errs = errors.Join(errs, err)
		} else if !m.self && st.reachable {
			st.reachable, st.why, notRead = false, "its registries are not read yet", true
		}
		states = append(states, st)
	}
	sessions, err := c.sessions.MirrordSessions(r.Namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	status := registryStatus(r, states, sessions)
	if !reflect.DeepEqual(status, r.Status) {
		updated := r.DeepCopy()
		updated.Status = status
		if _, err := c.mirrord.MirrordV1alpha1().MirrordWorkloadQueueRegistries(r.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = errors.Join(errs, err)
		}
	}
	if errs == nil && notRead {
		return &worker.Requeue{After: 200 * time.Millisecond}
	}
	return errs
}

// ensureRegistryCopy makes m's copy of r hold r's spec, and returns it.
func (c *Controller) ensureRegistryCopy(ctx context.Context, m *member, r *mirrordv1alpha1.MirrordWorkloadQueueRegistry) (*mirrordv1alpha1.MirrordWorkloadQueueRegistry, error) {
	want := constructRegistryCopy(c.roles.ClusterName, r, m.namespace)
	client := m.mirrord.MirrordV1alpha1().MirrordWorkloadQueueRegistries(m.namespace)
	have, err := m.registryCopies.MirrordWorkloadQueueRegistries(m.namespace).Get(want.Name)
	switch {
	case apierrors.IsNotFound(err):
		created, err := client.Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil, nil // the informer is behind; its event brings us back
		}
		if err != nil {
			return nil, fmt.Errorf("copying queue registry %s/%s to %s: %w", r.Namespace, r.Name, m.name, describeProbeErr(err))
		}
		return created, nil
	case err != nil:
		return nil, err
	case reflect.DeepEqual(have.Spec, want.Spec):
		return have, nil
	}
	updated := have.DeepCopy()
	updated.Spec = want.Spec
	got, err := client.Update(ctx, updated, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return have, nil // the informer is behind; its event brings us back
	}
	if err != nil {
		return have, fmt.Errorf("updating queue registry %s/%s's copy in %s: %w", r.Namespace, r.Name, m.name, describeProbeErr(err))
	}
	return got, nil
}

// deleteRegistryCopies deletes member m's copies of the registry named key, except keep's.
func (c *Controller) deleteRegistryCopies(ctx context.Context, m *member, key cache.ObjectName, keep types.UID) error {
	copies, err := m.registryCopies.MirrordWorkloadQueueRegistries(m.namespace).List(labels.SelectorFromSet(labels.Set{
		mirrordv1alpha1.LabelParentNamespace: key.Namespace, mirrordv1alpha1.LabelParentName: key.Name}))
	if err != nil {
		return err
	}
	for _, cp := range copies {
		if types.UID(cp.Labels[mirrordv1alpha1.LabelParentUID]) == keep || cp.DeletionTimestamp != nil {
			continue
		}
		err := m.mirrord.MirrordV1alpha1().MirrordWorkloadQueueRegistries(cp.Namespace).Delete(ctx, cp.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cp.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting queue registry %s's copy in %s: %w", key, m.name, describeProbeErr(err))
		}
		klog.FromContext(ctx).V(1).Info("Deleted a queue registry's copy", "registry", key, "cluster", m.name, "copy", klog.KObj(cp))
	}
	return nil
}

// sweepRegistryCopies deletes member m's copies whose registry is gone from the Primary.
func (c *Controller) sweepRegistryCopies(ctx context.Context, m *member) {
	if !registriesKnown(m) {
		return
	}
	copies, err := m.registryCopies.List(labels.Everything())
	if err != nil {
		return
	}
	for _, cp := range copies {
		r, err := c.registries.MirrordWorkloadQueueRegistries(cp.Labels[mirrordv1alpha1.LabelParentNamespace]).Get(cp.Labels[mirrordv1alpha1.LabelParentName])
		if err == nil && string(r.UID) == cp.Labels[mirrordv1alpha1.LabelParentUID] {
			continue
		}
		if err != nil && !apierrors.IsNotFound(err) {
			continue
		}
		klog.FromContext(ctx).Info("Deleting an orphaned queue registry copy", "cluster", m.name, "copy", klog.KObj(cp))
		_ = m.mirrord.MirrordV1alpha1().MirrordWorkloadQueueRegistries(cp.Namespace).Delete(ctx, cp.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cp.UID}})
	}
}

// consumerRegistry is the queue registry of the Primary whose consumer is target, if any.
func (c *Controller) consumerRegistry(t mirrordv1alpha1.Target) *mirrordv1alpha1.MirrordWorkloadQueueRegistry {
	if t.Kind != mirrordv1alpha1.TargetKindDeployment {
		return nil
	}
	rs, err := c.registries.MirrordWorkloadQueueRegistries(t.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	for _, r := range rs {
		if r.Spec.Consumer.Name == t.Name && r.DeletionTimestamp == nil {
			return r
		}
	}
	return nil
}

// sessionQueue is the shape of a session's queue as the Default cluster names it
// (queuesplit.QueueName), alone or at the end of a URL.
var sessionQueue = regexp.MustCompile(`^mirrord-s-[0-9a-f]{10}-[A-Za-z0-9_-]*(\.fifo)?$`)

// sessionQueues is what a session is told of its split queues in one cluster, from what
// the member reported: a member is not trusted further than the shape of its answer. The
// variable is the Primary's registry's, not the member's word; a value (the session's own
// queue) is taken only from the Default cluster, which makes it, and only if it names a
// session queue.
func sessionQueues(asked []mirrordv1alpha1.QueueSplitRequest, r *mirrordv1alpha1.MirrordWorkloadQueueRegistry,
	reported []mirrordv1alpha1.SessionQueueStatus, isDefault bool) []mirrordv1alpha1.SessionQueueStatus {
	var out []mirrordv1alpha1.SessionQueueStatus
	for _, q := range asked {
		st := mirrordv1alpha1.SessionQueueStatus{QueueID: q.QueueID}
		if r == nil {
			st.Message = "no MirrordWorkloadQueueRegistry on the Primary names the target as its consumer"
			out = append(out, st)
			continue
		}
		rq, known := r.Spec.Queues[q.QueueID]
		if !known {
			st.Message = fmt.Sprintf("queue registry %s has no queue %q", r.Name, q.QueueID)
			out = append(out, st)
			continue
		}
		st.Variable = rq.NameSource.EnvVar
		i := slices.IndexFunc(reported, func(s mirrordv1alpha1.SessionQueueStatus) bool { return s.QueueID == q.QueueID })
		if i < 0 {
			st.Message = "not reported yet"
			out = append(out, st)
			continue
		}
		got := reported[i]
		st.Ready, st.Message = got.Ready, got.Message
		if len(st.Message) > 1024 {
			st.Message = st.Message[:1024]
		}
		if isDefault && got.Value != "" {
			if name := got.Value[strings.LastIndex(got.Value, "/")+1:]; len(got.Value) <= 1024 && sessionQueue.MatchString(name) {
				st.Value = got.Value
			} else {
				st.Ready, st.Message = false, "the Default cluster reported a queue that is not a session's queue"
			}
		}
		if isDefault && st.Ready && st.Value == "" {
			st.Ready, st.Message = false, "the Default cluster has not named the session's queue"
		}
		out = append(out, st)
	}
	return out
}
