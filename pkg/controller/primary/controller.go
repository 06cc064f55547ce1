// Package primary is the controller of the Primary cluster: for each MirrordSession it
// creates one MirrordClusterSession in every member cluster (with that member's part of the
// work), aggregates their status into the session, ends sessions whose owner stopped
// heartbeating, and removes children when the session goes.
package primary

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	coordinationlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/authz"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/clients"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/naming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/roles"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/worker"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/credentials"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
	mirrordinformers "github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/informers/externalversions"
	mirrordlisters "github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/listers/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/policy"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/profile"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

// ControllerName names this controller in logs, metrics and events.
const ControllerName = "primary"

// Event reasons on MirrordSessions (condition reasons are the API's: mirrordv1alpha1.Reason*).
const (
	EventChildCreated     = "ChildCreated"
	EventHeartbeatExpired = "HeartbeatExpired"
	EventFailed           = "SessionFailed"
)

// Options configure the Primary controller.
type Options struct {
	// Namespace is the controller's own: its Secrets, and its children when it is a member.
	Namespace string
	Roles     roles.Roles
	Workers   int
	Clock     clock.PassiveClock
}

// Controller reconciles MirrordSessions across member clusters.
type Controller struct {
	kube     kubernetes.Interface
	mirrord  versioned.Interface
	roles    roles.Roles
	opts     Options
	clock    clock.PassiveClock
	recorder record.EventRecorder

	queue        worker.Queue // sessions
	clusterQueue worker.Queue // one key: rebuild the member set
	branchQueue  worker.Queue // database branches, copied to the Default (branches.go)
	// registryQueue: queue registries, copied to the Workload clusters (queues.go)
	registryQueue worker.Queue

	sessions    mirrordlisters.MirrordSessionLister
	clusters    mirrordlisters.MirrordClusterLister
	branches    mirrordlisters.MirrordDBBranchLister
	registries  mirrordlisters.MirrordWorkloadQueueRegistryLister
	secrets     corelisters.SecretLister
	leases      coordinationlisters.LeaseLister // sessions' heartbeats, in Namespace
	policiesFor func(namespace string) ([]policy.Policy, error)
	// profileOf is the adjustments of the profile a session names, from the Primary's.
	profileOf func(ref profile.Ref) ([]mirrordv1alpha1.FeatureAdjustment, error)
	labelsOf  func(mirrordv1alpha1.Target) map[string]string
	synced    []cache.InformerSynced

	runCtx    context.Context
	mu        sync.RWMutex
	members   map[string]*member
	topoError error

	// started is when this controller started: no session expires within a TTL of it.
	started time.Time

	// stateMu guards RBAC's last answer per session (accessOf).
	stateMu sync.Mutex
	access  map[cache.ObjectName]accessAnswer
}

// accessAnswer is RBAC's answer for one session, and when it was given.
type accessAnswer struct {
	uid    types.UID
	access *authz.Access
	at     time.Time
}

// accessRecheck is how often RBAC is asked again whether a running session's owner may still
// target it: revoking a user's grant ends their sessions within this time.
const accessRecheck = time.Minute

var membersKey = cache.ObjectName{Name: "members"}

// New wires the Primary controller. labelsOf returns a local target's labels for policy
// selectors (nil when the Primary runs no workloads).
func New(kube kubernetes.Interface, mirrord versioned.Interface, kubeOwn kubeinformers.SharedInformerFactory,
	mirrordAll mirrordinformers.SharedInformerFactory, recorder record.EventRecorder,
	labelsOf func(mirrordv1alpha1.Target) map[string]string, opts Options) (*Controller, error) {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if labelsOf == nil {
		labelsOf = func(mirrordv1alpha1.Target) map[string]string { return nil }
	}
	c := &Controller{
		kube: kube, mirrord: mirrord, roles: opts.Roles, opts: opts, clock: opts.Clock, recorder: recorder,
		queue: worker.NewQueue(ControllerName), clusterQueue: worker.NewQueue(ControllerName + "-clusters"),
		branchQueue: worker.NewQueue(ControllerName + "-branches"), registryQueue: worker.NewQueue(ControllerName + "-queue-registries"),
		labelsOf: labelsOf, members: map[string]*member{},
		access: map[cache.ObjectName]accessAnswer{}, started: opts.Clock.Now(),
	}
	sessions := mirrordAll.Mirrord().V1alpha1().MirrordSessions()
	clusters := mirrordAll.Mirrord().V1alpha1().MirrordClusters()
	policies, clusterPolicies := mirrordAll.Mirrord().V1alpha1().MirrordPolicies(), mirrordAll.Mirrord().V1alpha1().MirrordClusterPolicies()
	secrets, leases := kubeOwn.Core().V1().Secrets(), kubeOwn.Coordination().V1().Leases()
	branches := mirrordAll.Mirrord().V1alpha1().MirrordDBBranches()
	c.sessions, c.clusters, c.secrets, c.leases = sessions.Lister(), clusters.Lister(), secrets.Lister(), leases.Lister()
	registries := mirrordAll.Mirrord().V1alpha1().MirrordWorkloadQueueRegistries()
	c.branches, c.registries = branches.Lister(), registries.Lister()
	c.policiesFor = policy.Lister(policies.Lister(), clusterPolicies.Lister())
	profiles, clusterProfiles := mirrordAll.Mirrord().V1alpha1().MirrordProfiles(), mirrordAll.Mirrord().V1alpha1().MirrordClusterProfiles()
	c.profileOf = func(ref profile.Ref) ([]mirrordv1alpha1.FeatureAdjustment, error) {
		if ref.Namespace == "" {
			p, err := clusterProfiles.Lister().Get(ref.Name)
			if err != nil {
				return nil, err
			}
			return p.Spec.FeatureAdjustments, nil
		}
		p, err := profiles.Lister().MirrordProfiles(ref.Namespace).Get(ref.Name)
		if err != nil {
			return nil, err
		}
		return p.Spec.FeatureAdjustments, nil
	}
	for _, inf := range []cache.SharedIndexInformer{sessions.Informer(), clusters.Informer(), secrets.Informer(), leases.Informer(), policies.Informer(), clusterPolicies.Informer(), profiles.Informer(), clusterProfiles.Informer(), branches.Informer(), registries.Informer()} {
		c.synced = append(c.synced, inf.HasSynced)
	}
	if _, err := sessions.Informer().AddEventHandler(worker.Handler(c.queue)); err != nil {
		return nil, err
	}
	if !opts.Roles.Default {
		if _, err := branches.Informer().AddEventHandler(worker.Handler(c.branchQueue)); err != nil {
			return nil, err
		}
	}
	// A registry's status counts the sessions splitting its consumer's queues.
	if _, err := sessions.Informer().AddEventHandler(worker.FuncHandler(c.enqueueRegistriesOf)); err != nil {
		return nil, err
	}
	if _, err := registries.Informer().AddEventHandler(worker.Handler(c.registryQueue)); err != nil {
		return nil, err
	}
	// Members are rebuilt from MirrordClusters and their Secrets. A MirrordCluster's status,
	// which this controller writes every probe, does not change its generation: skip those.
	rebuild := func(any) { c.clusterQueue.Add(membersKey) }
	if _, err := clusters.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: rebuild, DeleteFunc: rebuild,
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*mirrordv1alpha1.MirrordCluster)
			n, ok2 := cur.(*mirrordv1alpha1.MirrordCluster)
			if ok1 && ok2 && o.Generation == n.Generation && maps.Equal(o.Labels, n.Labels) {
				return
			}
			rebuild(cur)
		},
	}); err != nil {
		return nil, err
	}
	if _, err := secrets.Informer().AddEventHandler(worker.FuncHandler(rebuild)); err != nil {
		return nil, err
	}
	// A heartbeat only pushes a deadline each session already waits for (sync reads the
	// Lease then), so renewals wake nothing; a first heartbeat or a deleted Lease does.
	byLease := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if l, ok := obj.(*coordinationv1.Lease); ok {
			c.enqueueParent(l.Labels)
		}
	}
	if _, err := leases.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: byLease, DeleteFunc: byLease}); err != nil {
		return nil, err
	}
	everything := worker.FuncHandler(func(any) { c.enqueueAllSessions() })
	for _, inf := range []cache.SharedIndexInformer{policies.Informer(), clusterPolicies.Informer(), profiles.Informer(), clusterProfiles.Informer()} {
		if _, err := inf.AddEventHandler(everything); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Controller) enqueueParent(l map[string]string) { enqueueParentIn(c.queue, l) }

// enqueueParentIn queues in q the parent (a session, branch or registry) that a member's
// object's labels name.
func enqueueParentIn(q worker.Queue, l map[string]string) {
	if ns, name := l[mirrordv1alpha1.LabelParentNamespace], l[mirrordv1alpha1.LabelParentName]; ns != "" && name != "" {
		q.Add(cache.NewObjectName(ns, name))
	}
}

func (c *Controller) enqueueAllSessions() {
	all, _ := c.sessions.List(labels.Everything())
	for _, s := range all {
		worker.Enqueue(c.queue, s)
	}
}

// Run waits for the caches, validates the topology, and reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithValues("controller", ControllerName)
	ctx = klog.NewContext(ctx, logger)
	c.runCtx = ctx
	if !cache.WaitForNamedCacheSync(ControllerName, ctx.Done(), c.synced...) {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("%s: caches did not sync", ControllerName)
	}
	if err := c.syncMembers(ctx, membersKey); err != nil {
		return err
	}
	logger.Info("Started", "cluster", c.roles.ClusterName, "roles", c.roles.String())
	go worker.Run(ctx, ControllerName+"-clusters", c.clusterQueue, 1, c.syncMembers)
	go worker.Run(ctx, ControllerName+"-branches", c.branchQueue, 2, c.syncBranch)
	go worker.Run(ctx, ControllerName+"-queue-registries", c.registryQueue, 1, c.syncRegistry)
	worker.Run(ctx, ControllerName, c.queue, c.opts.Workers, c.sync)
	c.mu.Lock()
	for _, m := range c.members {
		m.cancel()
	}
	c.mu.Unlock()
	return nil
}

// TopologyError is the reason this Primary serves no sessions, or nil; sessions fail with it.
func (c *Controller) TopologyError() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.topoError
}

// syncMembers validates the topology and (re)builds one member per cluster that has a role,
// including the Primary itself when it is a Workload.
func (c *Controller) syncMembers(ctx context.Context, _ cache.ObjectName) error {
	logger := klog.FromContext(ctx)
	clusters, err := c.clusters.List(labels.Everything())
	if err != nil {
		return err
	}
	topoErr := roles.ValidateTopology(c.roles, clusters)
	if topoErr != nil {
		logger.Error(topoErr, "Invalid cluster roles: sessions fail until an admin fixes them")
	}

	want := map[string]*member{}
	if c.roles.Workload || c.roles.Default {
		want[c.roles.ClusterName] = &member{
			name: c.roles.ClusterName, self: true, roles: rolesOf(c.roles.Workload, c.roles.Default),
			namespace: c.opts.Namespace, identity: "self", kube: c.kube, mirrord: c.mirrord,
		}
	}
	for _, mc := range clusters {
		if !mc.Spec.Workload && !mc.Spec.Default {
			continue
		}
		secret, err := c.secrets.Secrets(c.opts.Namespace).Get(mc.Spec.SecretRef.Name)
		if err != nil {
			msg := fmt.Sprintf("Secret %s/%s: %v; create it with `kubectl mirrord cluster register`", c.opts.Namespace, mc.Spec.SecretRef.Name, err)
			c.recorder.Event(mc, corev1.EventTypeWarning, "MissingCredentials", msg)
			want[mc.Name] = &member{name: mc.Name, roles: rolesOf(mc.Spec.Workload, mc.Spec.Default), probeErr: msg, identity: "broken:" + msg}
			continue
		}
		ns := mc.Spec.Namespace
		if ns == "" {
			ns = "mirrord-system"
		}
		m := &member{
			name: mc.Name, roles: rolesOf(mc.Spec.Workload, mc.Spec.Default), namespace: ns,
			identity: identityOf(mc, secret), secretName: secret.Name,
		}
		token := string(secret.Data[credentials.SecretKeyToken])
		m.token.Store(&token)
		cfg, err := credentials.RESTConfig(mc, secret)
		var cs clients.Set
		if err == nil {
			cfg.BearerToken = "" // the member's current one, on each request
			cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return &bearer{token: &m.token, rt: rt} }
			cs, err = clients.ForConfig(cfg)
		}
		if err != nil {
			want[mc.Name] = &member{name: mc.Name, roles: rolesOf(mc.Spec.Workload, mc.Spec.Default), probeErr: err.Error(), identity: "broken:" + err.Error()}
			continue
		}
		m.kube, m.mirrord = cs.Kube, cs.Mirrord
		want[mc.Name] = m
	}

	c.mu.Lock()
	keep, changed := planMembers(identities(c.members), identities(want))
	changed = changed || errString(topoErr) != errString(c.topoError)
	for name, old := range c.members {
		if keep[name] {
			w := want[name]
			old.roles = w.roles
			if t := w.token.Load(); t != nil {
				old.token.Store(t) // registered again, or renewed
			}
			want[name] = old
			continue
		}
		if old.cancel != nil {
			old.cancel()
		}
	}
	for _, m := range want {
		if m.cancel == nil && m.kube != nil {
			c.startMember(c.runCtx, m)
		}
	}
	c.members, c.topoError = want, topoErr
	c.mu.Unlock()
	// Every session depends on the members; reconcile them all, but only when they changed.
	if changed {
		c.enqueueAllSessions()
		c.enqueueAllBranches()
		c.enqueueAllRegistries()
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// sortedMembers returns the members in name order.
func (c *Controller) sortedMembers() []*member {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*member, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// sessionMembers are the members that hold a part of a session on t: every member, except
// that a targetless session is the Default cluster's alone (it has no pods to find elsewhere).
func sessionMembers(t mirrordv1alpha1.Target, members []*member) []*member {
	if !t.IsTargetless() {
		return members
	}
	var out []*member
	for _, m := range members {
		if m.has(mirrordv1alpha1.ClusterRoleDefault) {
			out = append(out, m)
		}
	}
	return out
}

// sync reconciles one MirrordSession.
func (c *Controller) sync(ctx context.Context, key cache.ObjectName) error {
	s, err := c.sessions.MirrordSessions(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		c.forget(key)
		// Children are removed by the finalizer, or by the orphan sweep; a heartbeat Lease
		// left by a session deleted without its finalizer goes here.
		return c.deleteLeasesOf(ctx, key)
	}
	if err != nil {
		return err
	}
	if s.DeletionTimestamp != nil {
		return c.finalize(ctx, s)
	}
	if updated, ok := withMetadata(s); ok {
		if s, err = c.mirrord.MirrordV1alpha1().MirrordSessions(s.Namespace).Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
			return ignoreGone(err)
		}
	}

	// Liveness: the owner heartbeats through the relay, which renews the session's Lease;
	// silence for the TTL, by servers' clocks, ends the session everywhere.
	now := c.clock.Now()
	lease, _ := c.leases.Leases(c.opts.Namespace).Get(naming.SessionLease(s.UID))
	last := lastHeartbeat(s, lease, c.started)
	gone, left := expiry(last, s.Spec.TTLSeconds, now)
	if gone {
		ttl := time.Duration(s.Spec.TTLSeconds) * time.Second
		klog.FromContext(ctx).Info("No heartbeat within the session's TTL: ending it", "lastHeartbeat", last, "ttl", ttl)
		c.recorder.Eventf(s, corev1.EventTypeNormal, EventHeartbeatExpired, "No heartbeat since %s (TTL %s): ending the session", last.UTC().Format(time.RFC3339), ttl)
		err := c.mirrord.MirrordV1alpha1().MirrordSessions(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}})
		return ignoreGone(err)
	}
	requeue := &worker.Requeue{After: left + 100*time.Millisecond}

	var access *authz.Access
	if s.Status.Phase != mirrordv1alpha1.SessionFailed {
		var askAgain time.Duration
		if access, askAgain, err = c.accessOf(ctx, key, s); err != nil {
			return err
		}
		requeue.After = min(requeue.After, askAgain)
	}
	status, recheck := c.reconcileChildren(ctx, s, access)
	if err := c.writeStatus(ctx, s, status); err != nil {
		return err
	}
	if recheck > 0 && recheck < requeue.After {
		requeue.After = recheck
	}
	return requeue
}

// accessOf is RBAC's answer to whether the session's owner may run it on its target
// (authz.AccessReview), asked of this API server once per session and again every
// accessRecheck; nil for a target kind RBAC cannot name. askAgain is when to ask again. A
// failed review of a session already answered keeps the last answer: an API server blip
// must not end sessions.
func (c *Controller) accessOf(ctx context.Context, key cache.ObjectName, s *mirrordv1alpha1.MirrordSession) (access *authz.Access, askAgain time.Duration, err error) {
	now := c.clock.Now()
	c.stateMu.Lock()
	last, ok := c.access[key]
	c.stateMu.Unlock()
	ok = ok && last.uid == s.UID
	if ok && now.Sub(last.at) < accessRecheck {
		return last.access, last.at.Add(accessRecheck).Sub(now), nil
	}
	review, reviewable := authz.AccessReview(s.Spec)
	if reviewable {
		got, err := c.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		switch {
		case err != nil && ok:
			klog.FromContext(ctx).Error(err, "Asking RBAC again whether the session's owner may target it; keeping the last answer")
			return last.access, 5 * time.Second, nil
		case err != nil:
			return nil, 0, fmt.Errorf("asking RBAC whether %s may target %s: %w", s.Spec.Owner, target.String(s.Spec.Target), err)
		}
		why := got.Status.Reason
		if got.Status.EvaluationError != "" {
			why = strings.TrimSpace(why + " " + got.Status.EvaluationError)
		}
		access = &authz.Access{Allowed: got.Status.Allowed && !got.Status.Denied, Why: why}
	}
	c.stateMu.Lock()
	c.access[key] = accessAnswer{uid: s.UID, access: access, at: now}
	c.stateMu.Unlock()
	return access, accessRecheck, nil
}

// deleteLeasesOf deletes the heartbeat Leases of the session key names, as the cache shows
// them: a session that never heartbeated costs no call.
func (c *Controller) deleteLeasesOf(ctx context.Context, key cache.ObjectName) error {
	sel := labels.SelectorFromSet(labels.Set{mirrordv1alpha1.LabelParentNamespace: key.Namespace, mirrordv1alpha1.LabelParentName: key.Name})
	leases, err := c.leases.Leases(c.opts.Namespace).List(sel)
	if err != nil {
		return err
	}
	for _, l := range leases {
		err := c.kube.CoordinationV1().Leases(l.Namespace).Delete(ctx, l.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &l.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
	}
	return nil
}

// forget drops what this controller remembers of a session that is gone.
func (c *Controller) forget(key cache.ObjectName) {
	c.stateMu.Lock()
	delete(c.access, key)
	c.stateMu.Unlock()
}

func ignoreGone(err error) error {
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

func hasFinalizer(s *mirrordv1alpha1.MirrordSession) bool {
	for _, f := range s.Finalizers {
		if f == mirrordv1alpha1.FinalizerChildren {
			return true
		}
	}
	return false
}

// reconcileChildren decides the session's status (admit, aggregate) and makes the children
// match it: created while the session can proceed, deleted once it has failed. recheck, when
// set, is when the decision may change without any event (a grace period ending).
func (c *Controller) reconcileChildren(ctx context.Context, s *mirrordv1alpha1.MirrordSession, access *authz.Access) (st mirrordv1alpha1.MirrordSessionStatus, recheck time.Duration) {
	in := admission{access: access, topology: c.TopologyError()}
	if s.Status.Phase != mirrordv1alpha1.SessionFailed {
		if ps, err := c.policiesFor(s.Spec.Target.Namespace); err == nil {
			if v := policy.Check(ps, s.Spec.Target, c.labelsOf(s.Spec.Target), s.Spec.Features); v != nil {
				in.violation = v
			}
		}
	}
	if s.Spec.Features.Profile != "" && (s.Status.Phase == "" || s.Status.Phase == mirrordv1alpha1.SessionPending) {
		in.profile = c.profileProblem(s)
	}
	members := sessionMembers(s.Spec.Target, c.sortedMembers())
	in.members = len(members)
	d, v := admit(s, in)
	if v == nil {
		verdict := aggregate(s, d, c.reportChildren(ctx, s, members), c.clock.Now())
		v = &verdict
	}
	if v.failure != "" {
		c.recorder.Event(s, corev1.EventTypeWarning, EventFailed, v.failure)
	}
	if v.removeChildren {
		_ = c.deleteChildren(ctx, s) // what is left is retried with the next reconcile, or swept
	}
	return v.status, v.recheck
}

// profileProblem says why a starting session does not follow the profile it names, or ""
// when it does. A running session is not failed by a profile edited after it started.
func (c *Controller) profileProblem(s *mirrordv1alpha1.MirrordSession) string {
	ref, adjs, err := profile.Resolve(s.Spec.Features.Profile, s.Namespace, c.profileOf)
	if err != nil {
		return err.Error()
	}
	if why := profile.Follows(adjs, s.Spec.Features); why != "" {
		return fmt.Sprintf("the session's features do not follow its profile %s (%s): start it with the profile applied (kubectl mirrord exec does)", ref, why)
	}
	return ""
}

// reportChildren makes sure every member holds the session's child, all at once (creating
// one is a request to that member's API server), and reports each.
func (c *Controller) reportChildren(ctx context.Context, s *mirrordv1alpha1.MirrordSession, members []*member) []childReport {
	reports := make([]childReport, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() {
			entry, child := c.reconcileChild(ctx, s, m)
			reachable, _ := m.state()
			reports[i] = childReport{
				member: m.name, entry: entry, child: child,
				workload:    m.has(mirrordv1alpha1.ClusterRoleWorkload),
				isDefault:   m.has(mirrordv1alpha1.ClusterRoleDefault),
				unreachable: m.kube == nil || (!m.self && !reachable),
			}
		})
	}
	wg.Wait()
	return reports
}

// reconcileChild makes sure m holds the session's child and reports it.
func (c *Controller) reconcileChild(ctx context.Context, s *mirrordv1alpha1.MirrordSession, m *member) (mirrordv1alpha1.SessionClusterStatus, *mirrordv1alpha1.MirrordClusterSession) {
	name := naming.ClusterSession(c.roles.ClusterName, s.Namespace, s.Name, s.UID)
	entry := mirrordv1alpha1.SessionClusterStatus{Name: m.name, Roles: m.roles, ChildName: name, Phase: mirrordv1alpha1.SessionPending}
	reachable, probeErr := m.state()
	if m.kube == nil || (!reachable && !m.self) {
		entry.Phase = mirrordv1alpha1.SessionDegraded
		entry.Error = probeErr
		if entry.Error == "" {
			entry.Error = "not probed yet"
		}
		return entry, nil
	}
	if !m.synced() {
		return entry, nil
	}
	child, err := m.children.MirrordClusterSessions(m.namespace).Get(name)
	if apierrors.IsNotFound(err) {
		child, err = c.createChild(ctx, s, m, name)
	}
	if err != nil {
		entry.Error = err.Error()
		return entry, nil
	}
	if child == nil || string(child.Spec.Parent.UID) != string(s.UID) {
		return entry, nil
	}
	entry.Phase, entry.ReadyAgents, entry.Agents = child.Status.Phase, child.Status.ReadyAgents, int32(len(child.Status.Agents))
	if entry.Phase == "" {
		entry.Phase = mirrordv1alpha1.SessionPending
	}
	if child.Status.Phase == mirrordv1alpha1.SessionFailed {
		entry.Error = readyMessage(child)
	}
	if len(s.Spec.Features.SplitQueues) > 0 {
		entry.Queues = sessionQueues(s.Spec.Features.SplitQueues, c.consumerRegistry(s.Spec.Target), child.Status.Queues, m.has(mirrordv1alpha1.ClusterRoleDefault))
	}
	if r := meta.FindStatusCondition(child.Status.Conditions, mirrordv1alpha1.ConditionTargetResolved); r != nil && child.Status.Phase == mirrordv1alpha1.SessionPending &&
		(r.Reason == mirrordv1alpha1.ReasonNoPods || r.Reason == mirrordv1alpha1.ReasonNoRunningPods) {
		entry.Error = r.Message // why this cluster waits, for the CLI's progress lines
	}
	return entry, child
}

func (c *Controller) createChild(ctx context.Context, s *mirrordv1alpha1.MirrordSession, m *member, name string) (*mirrordv1alpha1.MirrordClusterSession, error) {
	child := &mirrordv1alpha1.MirrordClusterSession{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: m.namespace,
			Labels: map[string]string{
				mirrordv1alpha1.LabelPrimary:         c.roles.ClusterName,
				mirrordv1alpha1.LabelParentUID:       string(s.UID),
				mirrordv1alpha1.LabelParentNamespace: s.Namespace,
				mirrordv1alpha1.LabelParentName:      s.Name,
			},
		},
		Spec: mirrordv1alpha1.MirrordClusterSessionSpec{
			Parent:     mirrordv1alpha1.ParentReference{Cluster: c.roles.ClusterName, Namespace: s.Namespace, Name: s.Name, UID: string(s.UID)},
			Roles:      m.roles,
			Target:     s.Spec.Target,
			Owner:      s.Spec.Owner,
			Features:   s.Spec.Features,
			TTLSeconds: s.Spec.TTLSeconds,
		},
	}
	created, err := m.mirrord.MirrordV1alpha1().MirrordClusterSessions(m.namespace).Create(ctx, child, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil, nil // the informer is behind; its event brings us back
	}
	if err != nil {
		return nil, fmt.Errorf("creating child session in %s: %w", m.name, describeProbeErr(err))
	}
	c.recorder.Eventf(s, corev1.EventTypeNormal, EventChildCreated, "Created child session %s in cluster %s (%s)", name, m.name, joinRoles(m.roles))
	return created, nil
}

func joinRoles(rs []mirrordv1alpha1.ClusterRole) string {
	var s []string
	for _, r := range rs {
		s = append(s, string(r))
	}
	return strings.Join(s, "+")
}

// deleteChildren deletes the session's child in every reachable member. Unreachable members
// are left to their own lease check and the orphan sweep.
func (c *Controller) deleteChildren(ctx context.Context, s *mirrordv1alpha1.MirrordSession) (errs error) {
	name := naming.ClusterSession(c.roles.ClusterName, s.Namespace, s.Name, s.UID)
	for _, m := range c.sortedMembers() {
		if m.kube == nil || !m.synced() {
			continue
		}
		child, err := m.children.MirrordClusterSessions(m.namespace).Get(name)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil || child.DeletionTimestamp != nil {
			continue
		}
		if reachable, _ := m.state(); !reachable && !m.self {
			continue // the member's own lease check and our orphan sweep will remove it
		}
		err = m.mirrord.MirrordV1alpha1().MirrordClusterSessions(m.namespace).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = errors.Join(errs, fmt.Errorf("deleting child session in %s: %w", m.name, err))
		}
	}
	return errs
}

// finalize removes the children, then the finalizer.
func (c *Controller) finalize(ctx context.Context, s *mirrordv1alpha1.MirrordSession) error {
	if !hasFinalizer(s) {
		return nil
	}
	if s.Status.Phase != mirrordv1alpha1.SessionTerminating {
		st := *s.Status.DeepCopy()
		st.Phase = mirrordv1alpha1.SessionTerminating
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: mirrordv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: mirrordv1alpha1.ReasonTerminating, Message: "removing child sessions", ObservedGeneration: s.Generation})
		_ = c.writeStatus(ctx, s, st)
	}
	if err := c.deleteChildren(ctx, s); err != nil {
		return err
	}
	// A Lease the cache does not show yet brings its session back here (or to the NotFound
	// path) when it does.
	if err := c.deleteLeasesOf(ctx, cache.NewObjectName(s.Namespace, s.Name)); err != nil {
		return fmt.Errorf("deleting the session's heartbeat Lease: %w", err)
	}
	updated := s.DeepCopy()
	updated.Finalizers = nil
	for _, f := range s.Finalizers {
		if f != mirrordv1alpha1.FinalizerChildren {
			updated.Finalizers = append(updated.Finalizers, f)
		}
	}
	_, err := c.mirrord.MirrordV1alpha1().MirrordSessions(s.Namespace).Update(ctx, updated, metav1.UpdateOptions{})
	return ignoreGone(err)
}

func (c *Controller) writeStatus(ctx context.Context, s *mirrordv1alpha1.MirrordSession, st mirrordv1alpha1.MirrordSessionStatus) error {
	if reflect.DeepEqual(s.Status, st) {
		return nil
	}
	updated := s.DeepCopy()
	updated.Status = st
	_, err := c.mirrord.MirrordV1alpha1().MirrordSessions(s.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	return ignoreGone(err)
}
