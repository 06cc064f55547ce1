package member

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/naming"
)

// Agents are shared: one Job per target pod and container serves every session on it, and
// each child session using it is one of its owners. A child joins a Job by adding its owner
// reference and leaves by removing it; a Job left with no live owner is deleted (syncAgentJob),
// so the last session's end takes the agent with it. Owner references are added and removed
// with strategic merge patches keyed by UID, so children joining and leaving at once never
// conflict; deleting uses the Job's resourceVersion as a precondition, so a Job someone joined
// meanwhile is not deleted under them.

// indexJobOwner indexes agent Jobs by the names of the child sessions that own them,
// indexJobTarget by the target they serve (targetKey).
const (
	indexJobOwner  = "owner"
	indexJobTarget = "target"
)

var childKind = mirrordv1alpha1.SchemeGroupVersion.WithKind("MirrordClusterSession")

func jobTargetIndex(obj any) ([]string, error) {
	j, ok := obj.(*batchv1.Job)
	if !ok || j.Labels[labelTargetPodUID] == "" {
		return nil, nil
	}
	return []string{jobTargetKey(j)}, nil
}

func jobOwnerIndex(obj any) ([]string, error) {
	j, ok := obj.(*batchv1.Job)
	if !ok {
		return nil, nil
	}
	var names []string
	for _, r := range j.OwnerReferences {
		if r.Kind == childKind.Kind && r.APIVersion == childKind.GroupVersion().String() {
			names = append(names, r.Name)
		}
	}
	return names, nil
}

// ownerRef is child's reference in the Jobs it uses. It neither controls the Job (several
// children own it) nor blocks its owner's deletion.
func ownerRef(child *mirrordv1alpha1.MirrordClusterSession) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: childKind.GroupVersion().String(), Kind: childKind.Kind, Name: child.Name, UID: child.UID,
		Controller: ptr.To(false), BlockOwnerDeletion: ptr.To(false)}
}

func ownedBy(j *batchv1.Job, uid types.UID) bool {
	for _, r := range j.OwnerReferences {
		if r.UID == uid {
			return true
		}
	}
	return false
}

// ownerPatch adds (or, with remove, removes) one owner reference, merged by UID.
func ownerPatch(ref metav1.OwnerReference, remove bool) []byte {
	entry := map[string]any{"apiVersion": ref.APIVersion, "kind": ref.Kind, "name": ref.Name, "uid": ref.UID,
		"controller": ref.Controller, "blockOwnerDeletion": ref.BlockOwnerDeletion}
	if remove {
		entry = map[string]any{"$patch": "delete", "uid": ref.UID}
	}
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"ownerReferences": []any{entry}}})
	return b
}

// joinAgent returns the shared agent Job of tp with child among its owners: it creates the
// Job, or joins the one that serves the pod. A Job being deleted cannot be joined: ok is false
// and the caller looks again shortly. Every Job gets a name of its own (naming.AgentJob), so
// two sessions of one pod must not both make one: making is serialized per target in this
// controller (the leader), which remembers what it made until its cache has it.
func (c *Controller) joinAgent(ctx context.Context, child *mirrordv1alpha1.MirrordClusterSession, tp targetPod) (j *batchv1.Job, ok bool, err error) {
	key := targetKey(tp.Pod.UID, tp.Container)
	unlock := c.lockTarget(key)
	defer unlock()
	j = c.agentJobOf(key)
	switch decideJoin(j, child.UID) {
	case joinWait:
		return nil, false, nil
	case joinHave:
		return j, true, nil
	case joinCreate:
		name := naming.AgentJob(tp.Pod.Name, tp.Pod.UID, tp.Container, utilrand.String(5))
		// The key first, so the kubelet finds it when the Job's pod arrives (it would retry
		// the mount for a second or more otherwise); the Job then owns it (ensureAgentKey).
		keySecret := name + "-" + utilrand.String(5)
		if err := c.newAgentKey(ctx, child.Namespace, keySecret, ownerRef(child)); err != nil {
			return nil, false, err
		}
		job, err := constructAgentJob(child.Namespace, name, tp, c.opts.Agent, keySecret)
		if err != nil {
			return nil, false, err
		}
		job.OwnerReferences = []metav1.OwnerReference{ownerRef(child)}
		created, err := c.kube.BatchV1().Jobs(job.Namespace).Create(ctx, job, metav1.CreateOptions{})
		if err != nil {
			// No Job uses it: gone now rather than with the session.
			_ = c.kube.CoreV1().Secrets(child.Namespace).Delete(ctx, keySecret, metav1.DeleteOptions{})
			return nil, false, fmt.Errorf("creating agent Job for pod %s/%s: %w", tp.Pod.Namespace, tp.Pod.Name, err)
		}
		c.made.Store(key, created)
		if err := c.ensureAgentKey(ctx, created); errors.Is(err, errKeyLost) {
			c.agentQueue.Add(cache.NewObjectName(created.Namespace, created.Name)) // replaced
			return nil, false, nil
		} else if err != nil {
			return nil, false, err // syncAgentJob makes up for it
		}
		c.recorder.Eventf(child, corev1.EventTypeNormal, EventAgentCreated, "Created agent Job %s for pod %s on node %s", created.Name, tp.Pod.Name, tp.Pod.Spec.NodeName)
		return created, true, nil
	}
	joined, err := c.kube.BatchV1().Jobs(j.Namespace).Patch(ctx, j.Name, types.StrategicMergePatchType, ownerPatch(ownerRef(child), false), metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		c.made.CompareAndDelete(key, j) // gone before our cache saw it
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("joining agent Job %s: %w", j.Name, err)
	}
	if joined.DeletionTimestamp != nil { // deleted just before we joined
		return nil, false, nil
	}
	c.recorder.Eventf(child, corev1.EventTypeNormal, EventAgentJoined, "Joined agent Job %s of pod %s on node %s, shared with %d other session(s)", joined.Name, tp.Pod.Name, tp.Pod.Spec.NodeName, len(joined.OwnerReferences)-1)
	return joined, true, nil
}

// agentJobOf is the Job that serves target key (servingJob), from the cache, or the one this
// controller made for it and its cache has not seen yet.
func (c *Controller) agentJobOf(key string) *batchv1.Job {
	objs, _ := c.jobIndex.ByIndex(indexJobTarget, key)
	jobs := make([]*batchv1.Job, 0, len(objs))
	for _, o := range objs {
		jobs = append(jobs, o.(*batchv1.Job))
	}
	if v, ok := c.made.Load(key); ok {
		made := v.(*batchv1.Job)
		seen := false
		for _, j := range jobs {
			seen = seen || j.UID == made.UID
		}
		if seen {
			c.made.CompareAndDelete(key, made) // the cache has it now
		} else {
			jobs = append(jobs, made)
		}
	}
	return servingJob(jobs)
}

// lockTarget serializes joinAgent per target key.
func (c *Controller) lockTarget(key string) (unlock func()) {
	v, _ := c.targetLocks.LoadOrStore(key, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// leaveAgent removes child from the owners of j; syncAgentJob deletes j if nobody is left.
func (c *Controller) leaveAgent(ctx context.Context, child *mirrordv1alpha1.MirrordClusterSession, j *batchv1.Job, why string) error {
	_, err := c.kube.BatchV1().Jobs(j.Namespace).Patch(ctx, j.Name, types.StrategicMergePatchType, ownerPatch(ownerRef(child), true), metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("leaving agent Job %s: %w", j.Name, err)
	}
	c.recorder.Eventf(child, corev1.EventTypeNormal, EventAgentLeft, "Left agent Job %s: %s", j.Name, why)
	c.agentQueue.Add(cache.NewObjectName(j.Namespace, j.Name))
	return nil
}

// childJobs returns the agent Jobs that name child (by name) among their owners.
func (c *Controller) childJobs(key cache.ObjectName) []*batchv1.Job {
	objs, err := c.jobIndex.ByIndex(indexJobOwner, key.Name)
	if err != nil {
		return nil
	}
	var jobs []*batchv1.Job
	for _, o := range objs {
		if j := o.(*batchv1.Job); j.Namespace == key.Namespace {
			jobs = append(jobs, j)
		}
	}
	return jobs
}

// inUse says whether a child that owns j exists and is not ending. The session cache is
// enough: a child joins a Job from its own reconcile, which reads it from that cache, so a
// child the cache lacks has been deleted (asking the API server instead would cost a request
// per gone owner each time a Job of many sessions changes while they end).
func (c *Controller) inUse(j *batchv1.Job) bool {
	for _, r := range j.OwnerReferences {
		if r.Kind != childKind.Kind {
			continue
		}
		child, err := c.sessions.MirrordClusterSessions(j.Namespace).Get(r.Name)
		if err == nil && child.UID == r.UID && child.DeletionTimestamp == nil {
			return true
		}
	}
	return false
}

// syncAgentJob deletes an agent Job that no live session owns any more, and one that reached
// its active deadline (its sessions get a new one).
func (c *Controller) syncAgentJob(ctx context.Context, key cache.ObjectName) error {
	j, err := c.jobs.Jobs(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if j.DeletionTimestamp != nil || j.Labels[mirrordv1alpha1.LabelComponent] != mirrordv1alpha1.ComponentAgent {
		return nil
	}
	why := ""
	switch {
	case c.inUse(j) && !isJobFailed(j):
		// Its key owned by it, if the controller that made the Job stopped before that.
		if err := c.ensureAgentKey(ctx, j); !errors.Is(err, errKeyLost) {
			return err
		}
		why = "its key Secret is gone, and no relay can reach the agent without it; its sessions get a new agent"
	case !c.inUse(j):
		why = "no session uses it"
	case jobFailedWith(j, batchv1.JobReasonDeadlineExceeded):
		why = "it reached its active deadline; its sessions get a new agent"
	default:
		return nil
	}
	err = c.kube.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
		// A session that joined since our cache saw j changed its resourceVersion.
		Preconditions: &metav1.Preconditions{UID: &j.UID, ResourceVersion: &j.ResourceVersion},
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or changed: its update event brings it back
	}
	if err != nil {
		return fmt.Errorf("deleting agent Job %s: %w", j.Name, err)
	}
	klog.FromContext(ctx).V(1).Info("Deleted agent Job", "job", j.Name, "why", why)
	return nil
}

// enqueueOwners reconciles every child that owns Job name.
func (c *Controller) enqueueOwners(namespace, name string) {
	j, err := c.jobs.Jobs(namespace).Get(name)
	if err != nil {
		return
	}
	c.enqueueJobOwners(j)
}

func (c *Controller) enqueueJobOwners(j *batchv1.Job) {
	for _, r := range j.OwnerReferences {
		if r.Kind == childKind.Kind {
			c.queue.Add(cache.NewObjectName(j.Namespace, r.Name))
		}
	}
}

func jobFailedWith(j *batchv1.Job, reason string) bool {
	for _, cnd := range j.Status.Conditions {
		if cnd.Type == batchv1.JobFailed && cnd.Status == corev1.ConditionTrue && cnd.Reason == reason {
			return true
		}
	}
	return false
}
