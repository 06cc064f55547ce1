package member

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/naming"
)

// A targetless session (mirrord's `targetless`) has no pod to enter: the Default cluster runs
// an agent of its own for it, in the session's namespace, so that its DNS, its outgoing
// connections and the NetworkPolicies they meet are that namespace's and no more (the
// controller's namespace is trusted further). The agent is an ordinary pod: unprivileged,
// scheduled like any other, within the restricted Pod Security Standard.
//
// Its Job cannot be owned by the child session, which lives in the controller's namespace
// (owner references do not cross namespaces): it carries the child's name and UID as labels,
// and this controller deletes it when the child is gone, from the child's deletion, from its
// Job informer's events, and at start for Jobs left while it was away. Its key is written
// twice: in the controller's namespace, owned by the child, for the relays to read; and in the
// session's namespace, owned by the Job, for its pod to mount. The controller may create
// Secrets there, never read them.

// indexChildUID and indexChildName index targetless agent Jobs by the UID and the name of
// the child they serve.
const (
	indexChildUID  = "childUID"
	indexChildName = "childName"
)

// targetlessIndexers index every Job by the child its labels name, if any: only targetless
// agents' have one.
var targetlessIndexers = cache.Indexers{indexChildUID: byLabel(mirrordv1alpha1.LabelChildUID), indexChildName: byLabel(mirrordv1alpha1.LabelChildName)}

func byLabel(key string) cache.IndexFunc {
	return func(obj any) ([]string, error) {
		if j, ok := obj.(*batchv1.Job); ok && j.Labels[key] != "" {
			return []string{j.Labels[key]}, nil
		}
		return nil, nil
	}
}

// targetlessResolution is what a targetless child is in a cluster: nothing to look up; the
// Default cluster serves it, any other refuses it (the Primary sends it only to the Default).
func targetlessResolution(isDefault bool, namespace string) resolution {
	if !isDefault {
		return resolution{Reason: mirrordv1alpha1.ReasonNotInDefault, Terminal: true,
			Message: "this cluster is not the Default cluster: only the Default runs targetless sessions"}
	}
	return resolution{Found: true, targetless: true, Reason: mirrordv1alpha1.ReasonResolved,
		Message: fmt.Sprintf("targetless: an agent of the session's own in namespace %s answers its DNS, outgoing traffic, files and environment", namespace)}
}

// targetlessUser is the agent's user and group in a targetless pod: not root, as the
// restricted Pod Security Standard wants (65532 is distroless's nonroot).
const targetlessUser = 65532

// constructTargetlessJob builds the agent Job of targetless child session child in namespace
// ns, mounting its key from Secret name (the Job's own name).
func constructTargetlessJob(ns, name string, child *mirrordv1alpha1.MirrordClusterSession, opts AgentOptions) (*batchv1.Job, error) {
	raw, err := json.Marshal(agentconfig.Config{Targetless: true, TargetNamespace: ns})
	if err != nil {
		return nil, fmt.Errorf("encoding agent config: %w", err)
	}
	labels := map[string]string{
		mirrordv1alpha1.LabelComponent: mirrordv1alpha1.ComponentTargetlessAgent,
		mirrordv1alpha1.LabelChildName: child.Name,
		mirrordv1alpha1.LabelChildUID:  string(child.UID),
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: map[string]string{
			mirrordv1alpha1.GroupName + "/session": child.Spec.Parent.Namespace + "/" + child.Spec.Parent.Name,
		}},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](3),
			ActiveDeadlineSeconds:   ptr.To(int64(opts.ActiveDeadline.Seconds())),
			TTLSecondsAfterFinished: ptr.To[int32](60),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: maps.Clone(sidecarOptOut)},
				Spec: corev1.PodSpec{
					RestartPolicy:                 corev1.RestartPolicyNever,
					AutomountServiceAccountToken:  ptr.To(false),
					EnableServiceLinks:            ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To[int64](targetlessUser),
						RunAsGroup:     ptr.To[int64](targetlessUser),
						FSGroup:        ptr.To[int64](targetlessUser), // the key file is the group's to read
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Volumes: []corev1.Volume{{Name: agentconfig.KeyVolume, VolumeSource: corev1.VolumeSource{
						Secret: &corev1.SecretVolumeSource{SecretName: name, DefaultMode: ptr.To[int32](0o440)}}}},
					Containers: []corev1.Container{agentContainer(opts, raw, "10m", &corev1.SecurityContext{
						AllowPrivilegeEscalation: ptr.To(false),
						ReadOnlyRootFilesystem:   ptr.To(true),
						Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					})},
				},
			},
		},
	}, nil
}

// targetlessObsolete says why targetless agent Job j must go, or "" if it serves its child:
// child is the child its labels name, nil when there is none.
func targetlessObsolete(j *batchv1.Job, child *mirrordv1alpha1.MirrordClusterSession) string {
	switch {
	case child == nil:
		return "its session is gone"
	case string(child.UID) != j.Labels[mirrordv1alpha1.LabelChildUID]:
		return "its session was replaced by another of the same name"
	case child.DeletionTimestamp != nil:
		return "its session is ending"
	case jobFailedWith(j, batchv1.JobReasonDeadlineExceeded):
		return "it reached its active deadline; its session gets a new agent"
	}
	return ""
}

// targetlessJob returns the agent Job of targetless child, making it (with its keys) when
// there is none: nil while the one it had is being deleted, or the cache has not seen the one
// it made yet.
func (c *Controller) targetlessJob(ctx context.Context, child *mirrordv1alpha1.MirrordClusterSession) (*batchv1.Job, error) {
	key := "targetless/" + string(child.UID)
	unlock := c.lockTarget(key)
	defer unlock()
	objs, _ := c.targetlessIndex.ByIndex(indexChildUID, string(child.UID))
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
			c.made.CompareAndDelete(key, made)
		} else {
			jobs = append(jobs, made)
		}
	}
	if j := servingJob(jobs); j != nil {
		if j.DeletionTimestamp != nil {
			return nil, nil
		}
		if err := c.ensureTargetlessKey(ctx, j); errors.Is(err, errKeyLost) {
			c.targetlessQueue.Add(cache.NewObjectName(j.Namespace, j.Name)) // replaced
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		return j, nil
	}

	ns := child.Spec.Target.Namespace
	name := naming.TargetlessAgent(child.UID, utilrand.String(5))
	agentKey, err := randomAgentKey()
	if err != nil {
		return nil, err
	}
	// The relays' copy first: it goes with the child, whatever happens next.
	if _, err := c.kube.CoreV1().Secrets(c.opts.Namespace).Create(ctx, agentKeySecret(c.opts.Namespace, name, ownerRef(child), agentKey), metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("writing a targetless agent's key: %w", err)
	}
	job, err := constructTargetlessJob(ns, name, child, c.opts.Agent)
	if err != nil {
		return nil, err
	}
	created, err := c.kube.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating the targetless agent Job in namespace %s: %w", ns, err)
	}
	c.made.Store(key, created)
	if err := c.ensureTargetlessKey(ctx, created); err != nil {
		return nil, err // the next reconcile writes it
	}
	c.recorder.Eventf(child, corev1.EventTypeNormal, EventAgentCreated, "Created targetless agent Job %s in namespace %s", created.Name, ns)
	return created, nil
}

// ensureTargetlessKey writes the key of targetless agent Job j where its pod mounts it, owned
// by j, from the relays' copy: once per Job for the life of this controller. The copy gone
// (deleted by hand, or with a child that ended) is errKeyLost: the Job is replaced.
func (c *Controller) ensureTargetlessKey(ctx context.Context, j *batchv1.Job) error {
	if _, ok := c.keyed.Load(j.UID); ok {
		return nil
	}
	own, err := c.kube.CoreV1().Secrets(c.opts.Namespace).Get(ctx, j.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return errKeyLost
	}
	if err != nil {
		return fmt.Errorf("the key of targetless agent Job %s: %w", j.Name, err)
	}
	s := agentKeySecret(j.Namespace, j.Name, jobRef(j), own.Data[agentconfig.KeyFile])
	if _, err := c.kube.CoreV1().Secrets(j.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("writing the key of targetless agent Job %s/%s: %w", j.Namespace, j.Name, err)
	}
	c.keyed.Store(j.UID, true)
	return nil
}

// targetlessReport reads a targetless agent's state from its Job and the Job's newest pod.
func (c *Controller) targetlessReport(child cache.ObjectName, j *batchv1.Job) agentReport {
	pods, _ := c.pods.Pods(j.Namespace).List(labels.SelectorFromSet(labels.Set{batchv1.ControllerUidLabel: string(j.UID)}))
	var newest *corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil && (newest == nil || p.CreationTimestamp.After(newest.CreationTimestamp.Time)) {
			newest = p
		}
	}
	self := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: j.Name}}
	if newest != nil {
		self = newest
	}
	serving := newest != nil && !isJobFailed(j) && !podReady(newest) && c.servingEarly(newest, func() { c.queue.Add(child) })
	a := agentState(j, targetPod{Pod: self}, newest, serving)
	a.Namespace = j.Namespace
	return agentReport{agent: a, failed: isJobFailed(j)}
}

// syncTargetlessJob deletes a targetless agent Job that no child needs any more
// (targetlessObsolete).
func (c *Controller) syncTargetlessJob(ctx context.Context, key cache.ObjectName) error {
	j, err := c.targetlessJobs.Jobs(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil || j.DeletionTimestamp != nil {
		return err
	}
	child, err := c.sessions.MirrordClusterSessions(c.opts.Namespace).Get(j.Labels[mirrordv1alpha1.LabelChildName])
	if apierrors.IsNotFound(err) {
		child, err = nil, nil
	}
	if err != nil {
		return err
	}
	why := targetlessObsolete(j, child)
	if why == "" {
		// Asked of the API server, not a cache: a cache a moment behind would not have the
		// key of a Job just made, and its Job would go.
		if _, lost := c.kube.CoreV1().Secrets(c.opts.Namespace).Get(ctx, j.Name, metav1.GetOptions{}); !apierrors.IsNotFound(lost) {
			return nil
		}
		why = "its key is gone, and no relay can reach the agent without it; its session gets a new agent"
	}
	err = c.kube.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
		Preconditions:     &metav1.Preconditions{UID: &j.UID},
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting targetless agent Job %s/%s: %w", j.Namespace, j.Name, err)
	}
	klog.FromContext(ctx).V(1).Info("Deleted targetless agent Job", "job", klog.KObj(j), "why", why)
	if child != nil {
		c.queue.Add(cache.NewObjectName(child.Namespace, child.Name))
	}
	return nil
}

// enqueueTargetless looks at the targetless agent Jobs of the child named name (it ended).
func (c *Controller) enqueueTargetless(name string) {
	if c.targetlessIndex == nil {
		return
	}
	objs, _ := c.targetlessIndex.ByIndex(indexChildName, name)
	for _, o := range objs {
		j := o.(*batchv1.Job)
		c.targetlessQueue.Add(cache.NewObjectName(j.Namespace, j.Name))
	}
}
