// Package member is the controller of a Workload or Default cluster: it gives each
// MirrordClusterSession a Primary created here an agent on every target pod (one Job per pod
// and container, shared by every session on it), follows the target as its pods come and go,
// enforces this cluster's policies, and reports the agents.
package member

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	coordinationlisters "k8s.io/client-go/listers/coordination/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/authz"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/naming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/worker"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
	mirrordinformers "github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/informers/externalversions"
	mirrordlisters "github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/listers/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/policy"
)

// ControllerName names this controller in logs, metrics and events.
const ControllerName = "member"

// Event reasons.
const (
	EventAgentCreated  = "AgentCreated"
	EventAgentJoined   = "AgentJoined"
	EventAgentLeft     = "AgentLeft"
	EventBlocked       = "BlockedByPolicy"
	EventTargetInvalid = "TargetInvalid"
	EventPrimaryGone   = "PrimaryGone"
	EventTargetRefused = "TargetRefused"
)

const (
	indexTargetNamespace = "targetNamespace"
	indexPrimary         = "primary"
)

// Options configure the member controller.
type Options struct {
	// Namespace is where child sessions and agent Jobs live (the controller's own).
	Namespace string
	// ExcludedNamespaces are namespaces whose workloads this cluster never lets a session
	// target, whatever the Primary asks (authz.Member).
	ExcludedNamespaces []string
	// Default: this cluster is the Default, which runs targetless sessions' agents in the
	// sessions' namespaces (targetless.go).
	Default bool
	Agent   AgentOptions
	// DBImages are the database branches' images by engine, "{version}" replaced by the
	// branch's; engines not named take DBBranchImages'.
	DBImages map[mirrordv1alpha1.DBEngine]string
	// ClusterName names this cluster on the queues it makes; Primary: this cluster is also
	// the Primary, whose admins write queue registries in the consumers' namespaces.
	ClusterName string
	Primary     bool
	Workers     int
	Clock       clock.PassiveClock
}

// Controller reconciles MirrordClusterSessions into agent Jobs.
type Controller struct {
	kube     kubernetes.Interface
	mirrord  versioned.Interface
	opts     Options
	recorder record.EventRecorder
	queue    worker.Queue
	// agentQueue holds agent Jobs to delete once no session uses them (syncAgentJob).
	agentQueue worker.Queue

	listers
	sessions     mirrordlisters.MirrordClusterSessionLister
	sessionIndex cache.Indexer
	jobs         batchlisters.JobLister
	jobIndex     cache.Indexer
	// targetlessJobs are the Jobs of every namespace, indexed by the child a targetless
	// agent's serves; targetlessQueue holds those to delete (syncTargetlessJob), only in the
	// Default cluster (nil elsewhere).
	targetlessJobs  batchlisters.JobLister
	targetlessIndex cache.Indexer
	targetlessQueue worker.Queue
	// branches and branchQueue: the Default cluster's database branches (dbbranch.go).
	branches    mirrordlisters.MirrordDBBranchLister
	branchQueue worker.Queue
	// registries, splitQueue and splits: queue splitting (queuesplit.go).
	registries    mirrordlisters.MirrordWorkloadQueueRegistryLister
	registryIndex cache.Indexer
	splitQueue    worker.Queue
	splits        *splitter
	leases        coordinationlisters.LeaseLister
	policiesFor   func(namespace string) ([]policy.Policy, error)
	synced        []cache.InformerSynced

	// keyed are the agent Jobs (by UID) whose key Secret this controller knows exists.
	keyed sync.Map
	// made holds, per target (targetKey), the agent Job this controller made last, until
	// its cache has it; targetLocks serialize joinAgent per target.
	made, targetLocks sync.Map

	// probes are agent pods this controller asks directly whether they serve (pod UID →
	// *agentProbe): the kubelet's readiness probe runs once a second, which would be most of
	// a session's start.
	probes sync.Map
}

// New wires the controller to its informers. kubeAll and mirrordAll watch every namespace;
// kubeOwn and mirrordOwn only the controller's namespace.
func New(kube kubernetes.Interface, mirrord versioned.Interface,
	kubeAll, kubeOwn kubeinformers.SharedInformerFactory,
	mirrordAll, mirrordOwn mirrordinformers.SharedInformerFactory,
	recorder record.EventRecorder, opts Options) (*Controller, error) {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	c := &Controller{kube: kube, mirrord: mirrord, opts: opts, recorder: recorder,
		queue: worker.NewQueue(ControllerName), agentQueue: worker.NewQueue(agentsControllerName)}

	sessions := mirrordOwn.Mirrord().V1alpha1().MirrordClusterSessions()
	if err := sessions.Informer().AddIndexers(cache.Indexers{
		indexTargetNamespace: func(obj any) ([]string, error) {
			return []string{obj.(*mirrordv1alpha1.MirrordClusterSession).Spec.Target.Namespace}, nil
		},
		indexPrimary: func(obj any) ([]string, error) {
			return []string{obj.(*mirrordv1alpha1.MirrordClusterSession).Labels[mirrordv1alpha1.LabelPrimary]}, nil
		},
	}); err != nil {
		return nil, err
	}
	c.sessions, c.sessionIndex = sessions.Lister(), sessions.Informer().GetIndexer()

	pods := kubeAll.Core().V1().Pods()
	deployments, statefulSets := kubeAll.Apps().V1().Deployments(), kubeAll.Apps().V1().StatefulSets()
	replicaSets, daemonSets := kubeAll.Apps().V1().ReplicaSets(), kubeAll.Apps().V1().DaemonSets()
	jobs, leases := kubeOwn.Batch().V1().Jobs(), kubeOwn.Coordination().V1().Leases()
	policies, clusterPolicies := mirrordAll.Mirrord().V1alpha1().MirrordPolicies(), mirrordAll.Mirrord().V1alpha1().MirrordClusterPolicies()
	allJobs, cronJobs, services := kubeAll.Batch().V1().Jobs(), kubeAll.Batch().V1().CronJobs(), kubeAll.Core().V1().Services()
	c.listers = listers{pods: pods.Lister(), deployments: deployments.Lister(), statefulSets: statefulSets.Lister(), replicaSets: replicaSets.Lister(), daemonSets: daemonSets.Lister(),
		batchJobs: allJobs.Lister(), cronJobs: cronJobs.Lister(), services: services.Lister(), rollout: rolloutGetter(kube, deployments.Lister())}
	if err := jobs.Informer().AddIndexers(cache.Indexers{indexJobOwner: jobOwnerIndex, indexJobTarget: jobTargetIndex}); err != nil {
		return nil, err
	}
	c.jobs, c.jobIndex, c.leases = jobs.Lister(), jobs.Informer().GetIndexer(), leases.Lister()
	c.policiesFor = policy.Lister(policies.Lister(), clusterPolicies.Lister())

	for _, inf := range []cache.SharedIndexInformer{
		sessions.Informer(), pods.Informer(), deployments.Informer(), statefulSets.Informer(), replicaSets.Informer(),
		daemonSets.Informer(), jobs.Informer(), leases.Informer(), policies.Informer(), clusterPolicies.Informer(),
		allJobs.Informer(), cronJobs.Informer(), services.Informer(),
	} {
		c.synced = append(c.synced, inf.HasSynced)
	}

	if _, err := sessions.Informer().AddEventHandler(worker.Handler(c.queue)); err != nil {
		return nil, err
	}
	// A child going means its agents may have no session left.
	if _, err := sessions.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) {
			if ch, ok := obj.(*mirrordv1alpha1.MirrordClusterSession); ok && ch.DeletionTimestamp != nil {
				c.enqueueChildJobs(cache.NewObjectName(ch.Namespace, ch.Name))
			}
		},
		DeleteFunc: func(obj any) {
			if key, err := cache.DeletionHandlingObjectToName(obj); err == nil {
				c.enqueueChildJobs(key)
			}
		},
	}); err != nil {
		return nil, err
	}
	if opts.Default {
		branches := mirrordAll.Mirrord().V1alpha1().MirrordDBBranches()
		c.branches, c.branchQueue = branches.Lister(), worker.NewQueue(dbBranchesControllerName)
		c.synced = append(c.synced, branches.Informer().HasSynced)
		if _, err := branches.Informer().AddEventHandler(worker.Handler(c.branchQueue)); err != nil {
			return nil, err
		}
		// A branch's pod changing (seeded, failed, deleted) is its branch's business; at start
		// every one is looked at, so one whose branch went while this controller was away goes.
		if _, err := pods.Informer().AddEventHandler(worker.FuncHandler(c.enqueueBranchOf)); err != nil {
			return nil, err
		}
		if err := allJobs.Informer().AddIndexers(targetlessIndexers); err != nil {
			return nil, err
		}
		c.targetlessJobs, c.targetlessIndex = allJobs.Lister(), allJobs.Informer().GetIndexer()
		c.targetlessQueue = worker.NewQueue(targetlessControllerName)
		// Its add events at the informer's start look at every Job: one left by a session
		// that ended while this controller was away goes.
		if _, err := allJobs.Informer().AddEventHandler(worker.FuncHandler(func(obj any) {
			if j, ok := obj.(*batchv1.Job); ok && j.Labels[mirrordv1alpha1.LabelComponent] == mirrordv1alpha1.ComponentTargetlessAgent {
				c.queue.Add(cache.NewObjectName(opts.Namespace, j.Labels[mirrordv1alpha1.LabelChildName]))
				c.targetlessQueue.Add(cache.NewObjectName(j.Namespace, j.Name))
			}
		})); err != nil {
			return nil, err
		}
	}
	if err := c.watchSplits(sessions.Informer(), deployments.Informer(), mirrordAll.Mirrord().V1alpha1().MirrordWorkloadQueueRegistries()); err != nil {
		return nil, err
	}
	// An agent Job concerns the sessions that own it; an agent pod its Job's sessions;
	// anything else in a namespace may be (part of) a target there.
	byOwnerOrNamespace := worker.FuncHandler(func(obj any) {
		o, ok := obj.(metav1.Object)
		if !ok {
			return
		}
		if o.GetLabels()[mirrordv1alpha1.LabelComponent] == mirrordv1alpha1.ComponentAgent && o.GetNamespace() == opts.Namespace {
			switch o := o.(type) {
			case *batchv1.Job:
				c.enqueueJobOwners(o)
				c.agentQueue.Add(cache.NewObjectName(o.Namespace, o.Name))
			case *corev1.Pod:
				c.enqueueOwners(o.Namespace, o.Labels[batchv1.JobNameLabel])
			}
			return
		}
		if o.GetLabels()[mirrordv1alpha1.LabelComponent] == mirrordv1alpha1.ComponentTargetlessAgent {
			if _, ok := o.(*corev1.Pod); ok {
				c.queue.Add(cache.NewObjectName(opts.Namespace, o.GetLabels()[mirrordv1alpha1.LabelChildName]))
			}
			return
		}
		c.enqueueIndexed(indexTargetNamespace, o.GetNamespace())
	})
	for _, inf := range []cache.SharedIndexInformer{pods.Informer(), deployments.Informer(), statefulSets.Informer(), replicaSets.Informer(), daemonSets.Informer(), jobs.Informer(),
		allJobs.Informer(), cronJobs.Informer(), services.Informer()} {
		if _, err := inf.AddEventHandler(byOwnerOrNamespace); err != nil {
			return nil, err
		}
	}
	// A deleted key Secret: its Job, if it still runs, is replaced (syncAgentJob).
	secrets := kubeOwn.Core().V1().Secrets()
	c.synced = append(c.synced, secrets.Informer().HasSynced)
	if _, err := secrets.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		s, ok := obj.(*corev1.Secret)
		if !ok || s.Labels[mirrordv1alpha1.LabelComponent] != mirrordv1alpha1.ComponentAgentKey {
			return
		}
		for _, r := range s.OwnerReferences {
			if r.Kind == "Job" {
				c.keyed.Delete(r.UID)
				c.agentQueue.Add(cache.NewObjectName(s.Namespace, r.Name))
			}
		}
	}}); err != nil {
		return nil, err
	}
	// A gone agent Job's key is forgotten (the Secret goes with the Job).
	if _, err := jobs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if j, ok := obj.(*batchv1.Job); ok {
			c.keyed.Delete(j.UID)
		}
	}}); err != nil {
		return nil, err
	}
	// A gone agent pod's direct probe is forgotten.
	if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if p, ok := obj.(*corev1.Pod); ok {
			c.probes.Delete(p.UID)
		}
	}}); err != nil {
		return nil, err
	}
	everything := worker.FuncHandler(func(any) { c.enqueueAll() })
	for _, inf := range []cache.SharedIndexInformer{policies.Informer(), clusterPolicies.Informer()} {
		if _, err := inf.AddEventHandler(everything); err != nil {
			return nil, err
		}
	}
	// A Primary's Lease appearing or going matters at once; its renewals (every few seconds)
	// only push the deadline each child already waits for (sync re-arms it), so they are not
	// worth a reconcile of every child.
	byLease := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if l, ok := obj.(*coordinationv1.Lease); ok {
			c.enqueueIndexed(indexPrimary, primaryOfLease(l.Name))
		}
	}
	if _, err := leases.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: byLease, DeleteFunc: byLease}); err != nil {
		return nil, err
	}
	return c, nil
}

// agentsControllerName names the loop that deletes unused agent Jobs.
const (
	agentsControllerName     = "member-agents"
	targetlessControllerName = "member-targetless-agents"
)

func (c *Controller) enqueueChildJobs(key cache.ObjectName) {
	for _, j := range c.childJobs(key) {
		c.agentQueue.Add(cache.NewObjectName(j.Namespace, j.Name))
	}
	c.enqueueTargetless(key.Name)
}

func primaryOfLease(name string) string {
	p := naming.PrimaryLease("")
	if len(name) > len(p) && name[:len(p)] == p {
		return name[len(p):]
	}
	return ""
}

func (c *Controller) enqueueIndexed(index, value string) {
	objs, err := c.sessionIndex.ByIndex(index, value)
	if err != nil {
		return
	}
	for _, o := range objs {
		worker.Enqueue(c.queue, o)
	}
}

func (c *Controller) enqueueAll() {
	for _, o := range c.sessionIndex.List() {
		worker.Enqueue(c.queue, o)
	}
}

// Run waits for the caches and reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithValues("controller", ControllerName)
	if !cache.WaitForNamedCacheSync(ControllerName, ctx.Done(), c.synced...) {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("%s: caches did not sync", ControllerName)
	}
	logger.Info("Started", "namespace", c.opts.Namespace)
	if c.targetlessQueue != nil {
		go worker.Run(ctx, targetlessControllerName, c.targetlessQueue, 1, c.syncTargetlessJob)
	}
	if c.branchQueue != nil {
		go worker.Run(ctx, dbBranchesControllerName, c.branchQueue, 2, c.syncBranch)
	}
	// Agent Jobs no session used while this controller was away.
	for _, o := range c.jobIndex.List() {
		worker.Enqueue(c.agentQueue, o)
	}
	go worker.Run(ctx, agentsControllerName, c.agentQueue, 1, c.syncAgentJob)
	go worker.Run(ctx, splitControllerName, c.splitQueue, 2, c.syncSplit)
	worker.Run(ctx, ControllerName, c.queue, c.opts.Workers, c.sync)
	return nil
}

// sync brings one child session's agents in line with its target.
func (c *Controller) sync(ctx context.Context, key cache.ObjectName) error {
	logger := klog.FromContext(ctx)
	child, err := c.sessions.MirrordClusterSessions(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) || (err == nil && child.DeletionTimestamp != nil) {
		// The garbage collector deletes a Job whose owners are all gone, but it can lag
		// (after an API server restart, for one): look at its agents now.
		c.enqueueChildJobs(key)
		return nil
	}
	if err != nil {
		return err
	}

	// A child lives only while the Primary that made it renews its Lease here.
	if gone, wait := c.primaryGone(child); gone {
		logger.Info("Primary stopped renewing its lease; removing the session", "primary", child.Labels[mirrordv1alpha1.LabelPrimary])
		c.recorder.Eventf(child, corev1.EventTypeNormal, EventPrimaryGone, "Primary %q has not renewed its lease: removing this session and its agents", child.Labels[mirrordv1alpha1.LabelPrimary])
		err := c.mirrord.MirrordV1alpha1().MirrordClusterSessions(child.Namespace).Delete(ctx, child.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &child.UID}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	} else {
		defer c.queue.AddAfter(key, wait)
	}

	// What the Primary asks is checked here again: this cluster's admin has the last word on
	// what a session may target in it. A refused target is not even looked up.
	var res resolution
	if d := authz.Member(c.opts.ExcludedNamespaces, child.Spec); d != nil {
		if !meta.IsStatusConditionFalse(child.Status.Conditions, mirrordv1alpha1.ConditionAuthorized) {
			c.recorder.Event(child, corev1.EventTypeWarning, EventTargetRefused, d.Message)
		}
		res = resolution{Reason: d.Reason, Message: d.Message, Terminal: true, refused: true}
	} else if child.Spec.Target.IsTargetless() {
		res = targetlessResolution(c.opts.Default, child.Spec.Target.Namespace)
	} else if res, err = c.resolveTarget(child.Spec.Target); err != nil {
		return err
	}
	policies, err := c.policiesFor(child.Spec.Target.Namespace)
	if err != nil {
		return err
	}
	w := weigh(child.Spec, res, policies)
	res, violation, features := w.res, w.violation, w.features
	if violation != nil && !meta.IsStatusConditionFalse(child.Status.Conditions, mirrordv1alpha1.ConditionPolicyAllowed) {
		c.recorder.Event(child, corev1.EventTypeWarning, EventBlocked, violation.Error())
	}
	// Desired agents: one per running target pod, none if the session cannot proceed here.
	desired := map[types.UID]targetPod{}
	if violation == nil && !res.Terminal {
		for _, tp := range res.Pods {
			desired[tp.Pod.UID] = tp
		}
	}
	// Leave the agents of pods no longer wanted (gone, or the session is blocked now).
	for _, j := range unwanted(c.childJobs(key), child.UID, desired) {
		if err := c.leaveAgent(ctx, child, j, "pod "+j.Annotations[mirrordv1alpha1.GroupName+"/target-pod"]+" is no longer a target"); err != nil {
			return err
		}
	}
	have := map[types.UID]*batchv1.Job{}
	waiting := false
	for uid, tp := range desired {
		j, ok, err := c.joinAgent(ctx, child, tp)
		if err != nil {
			return err
		}
		if !ok {
			waiting = true // the pod's last agent is being deleted: a new one after it
			continue
		}
		have[uid] = j
	}
	if waiting {
		defer c.queue.AddAfter(key, 500*time.Millisecond)
	}

	agents := make([]agentReport, 0, len(have))
	for uid, j := range have {
		agents = append(agents, c.agentReport(j, desired[uid]))
	}
	wanted := len(desired)
	if res.targetless && violation == nil && !res.Terminal {
		wanted = 1
		j, err := c.targetlessJob(ctx, child)
		if err != nil {
			return err
		}
		if j == nil {
			defer c.queue.AddAfter(key, 500*time.Millisecond) // its last agent is going, or our cache is behind
		} else {
			agents = append(agents, c.targetlessReport(key, j))
		}
	}
	status := childStatus(child, res, violation, features, wanted, agents)
	status.Queues = c.queueStatuses(child)
	if reflect.DeepEqual(child.Status, status) {
		return nil
	}
	updated := child.DeepCopy()
	updated.Status = status
	_, err = c.mirrord.MirrordV1alpha1().MirrordClusterSessions(child.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// primaryGone reports whether the Primary that created child stopped renewing its Lease
// here; if not, it says when to look again.
func (c *Controller) primaryGone(child *mirrordv1alpha1.MirrordClusterSession) (bool, time.Duration) {
	return c.primarySilent(&child.ObjectMeta, 0)
}

// primarySilent reports whether the Primary that created obj (its LabelPrimary) has not renewed
// its Lease here for the Lease's duration and grace more; if not, it says when to look again.
func (c *Controller) primarySilent(obj *metav1.ObjectMeta, grace time.Duration) (bool, time.Duration) {
	now := c.opts.Clock.Now()
	lease, err := c.leases.Leases(obj.Namespace).Get(naming.PrimaryLease(obj.Labels[mirrordv1alpha1.LabelPrimary]))
	last, duration := obj.CreationTimestamp.Time, DefaultPrimaryLeaseDuration+grace
	if err == nil {
		if lease.Spec.RenewTime != nil && lease.Spec.RenewTime.After(last) {
			last = lease.Spec.RenewTime.Time
		}
		if lease.Spec.LeaseDurationSeconds != nil {
			duration = time.Duration(*lease.Spec.LeaseDurationSeconds)*time.Second + grace
		}
	}
	deadline := last.Add(duration)
	if now.After(deadline) {
		return true, 0
	}
	return false, deadline.Sub(now) + time.Second
}

// DefaultPrimaryLeaseDuration is how long a member keeps a Primary's sessions without hearing
// from it.
const DefaultPrimaryLeaseDuration = 30 * time.Second

// agentReport reads an agent's state from its Job and the Job's newest pod.
func (c *Controller) agentReport(j *batchv1.Job, tp targetPod) agentReport {
	// By the Job's UID: the pods of an earlier Job of the same target may still be there.
	pods, _ := c.pods.Pods(j.Namespace).List(labels.SelectorFromSet(labels.Set{batchv1.ControllerUidLabel: string(j.UID)}))
	var newest *corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil && (newest == nil || p.CreationTimestamp.After(newest.CreationTimestamp.Time)) {
			newest = p
		}
	}
	serving := newest != nil && !isJobFailed(j) && !podReady(newest) && c.servingEarly(newest, func() { c.enqueueOwners(newest.Namespace, j.Name) })
	return agentReport{agent: agentState(j, tp, newest, serving), failed: isJobFailed(j)}
}

// podFailure says why a pod failed: the kubelet's reason (OutOfcpu, Evicted, ...) or the
// agent container's exit with its termination message (the end of its log).
func podFailure(p *corev1.Pod) string {
	if p.Status.Reason != "" {
		return strings.TrimSpace(p.Status.Reason + ": " + p.Status.Message)
	}
	for _, s := range p.Status.ContainerStatuses {
		if t := s.State.Terminated; t != nil && t.ExitCode != 0 {
			msg := fmt.Sprintf("exit code %d (%s)", t.ExitCode, t.Reason)
			if m := strings.TrimSpace(t.Message); m != "" {
				if len(m) > 512 {
					m = "..." + m[len(m)-512:]
				}
				msg += ": " + m
			}
			return msg
		}
	}
	return ""
}

// agentProbe is one agent pod's direct readiness check.
type agentProbe struct{ serving atomic.Bool }

// servingEarly says whether a running agent pod, not Ready yet, already serves: it asks the
// agent's /readyz itself (every 15-50 ms for up to 5 s, once per pod) and calls serving (which
// requeues the agent's sessions) when it does, instead of waiting up to a second for the
// kubelet's next probe.
func (c *Controller) servingEarly(p *corev1.Pod, serving func()) bool {
	if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
		return false
	}
	v, loaded := c.probes.LoadOrStore(p.UID, &agentProbe{})
	probe := v.(*agentProbe)
	if !loaded {
		select {
		case probeSlots <- struct{}{}:
		default:
			return false // many agents start at once: the kubelet's probe will do
		}
		url := fmt.Sprintf("http://%s/readyz", net.JoinHostPort(p.Status.PodIP, strconv.Itoa(agentconfig.HealthPort)))
		go func() {
			defer func() { <-probeSlots }()
			client := &http.Client{Timeout: 250 * time.Millisecond}
			// Every 15 ms for a second, then every 50 ms: the agent is seen within a few ms of
			// serving (a doubling interval cost up to 320 ms, most of a second cluster's
			// lag behind the first); an agent that is not listening yet refuses at once, so
			// a try costs next to nothing. After 5 s the kubelet's probe has long taken over.
			began := time.Now()
			for deadline := began.Add(5 * time.Second); time.Now().Before(deadline); {
				wait := 15 * time.Millisecond
				if time.Since(began) > time.Second {
					wait = 50 * time.Millisecond
				}
				if resp, err := client.Get(url); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						probe.serving.Store(true)
						serving()
						return
					}
				}
				time.Sleep(wait)
			}
		}()
	}
	return probe.serving.Load()
}

// probeSlots bounds the direct agent probes running at once.
var probeSlots = make(chan struct{}, 16)

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func isJobFailed(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// TargetLabels returns the labels of a target in this cluster (nil if absent), so the Primary
// can evaluate policy selectors when it is also a Workload. It reads only the target's object.
func (c *Controller) TargetLabels(t mirrordv1alpha1.Target) map[string]string {
	obj, err := c.lookup(t)
	if err != nil {
		return nil
	}
	return obj.meta.Labels
}
