package member

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/worker"
	mirrordinformersv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/informers/externalversions/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/queuesplit"
)

// Queue splitting in one Workload cluster. For each queue registry this cluster honours
// (registryConsumerNamespace) whose consumer Deployment has sessions asking for its queues:
// a fallback queue per split queue, the consumer's queue variable pointed at it (its pods
// roll), and a forwarder that moves each message of the original queue to the queue of the
// session whose filter it matches, or to the fallback. The Default cluster makes each
// session's queue (named from the session, so every cluster finds it); other clusters
// deliver to it. When no session is left: forwarders stop, the consumer is restored, and
// once it reads the original again the fallback is drained into it and deleted; a session's
// queue that outlived its session is drained into the original too (its messages are
// routed again) and deleted. Nothing is kept only in memory that a restart would need: the
// consumer's record (AnnotationQueueSplit) and the queues' tags say what to undo.

const splitControllerName = "member-queue-splits"

// TagOriginal, on a queue a split made, is the URL of the queue it splits: where a drain
// returns its messages.
const TagOriginal = "mirrord-original"

// splitResync is how often a split registry is looked at without an event: forwarder
// errors reach the sessions' status and queues of ended sessions go.
const splitResync = 30 * time.Second

// indexConsumer indexes registries by their consumer's namespace/name.
const indexConsumer = "consumer"

// splitter is the state of this cluster's splits that lives in memory: running forwarders
// and what each child session is told.
type splitter struct {
	mu         sync.Mutex
	forwarders map[string]*forwarder                           // by forwarderKey
	statuses   map[string][]mirrordv1alpha1.SessionQueueStatus // by child key
	owner      map[string]string                               // child key → the registry that told it
}

func newSplitter() *splitter {
	return &splitter{forwarders: map[string]*forwarder{}, statuses: map[string][]mirrordv1alpha1.SessionQueueStatus{}, owner: map[string]string{}}
}

func forwarderKey(registry, queueID string) string { return registry + "\x00" + queueID }

// forwarder moves the messages of one split queue while it runs.
type forwarder struct {
	src, fallback string
	// client is the latest reconcile's (credentials the admin rotated take effect).
	client  atomic.Pointer[sqs.Client]
	filters atomic.Pointer[[]queuesplit.Filter]
	lastErr atomic.Pointer[string]
	// stop ends the forwarder after its current move: a receive cut short would leave the
	// messages SQS handed it hidden for MoveVisibility. cancel ends it at once (the
	// controller's leadership ended).
	stop   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func (f *forwarder) route(m types.Message) string {
	fs := *f.filters.Load()
	if i := queuesplit.Route(queuesplit.StringAttributes(m), fs); i >= 0 {
		return fs[i].Queue
	}
	return f.fallback
}

// run moves messages until ctx ends; a failing SQS is retried, its error kept for the
// sessions' status.
func (f *forwarder) run(ctx context.Context) {
	defer close(f.done)
	backoff := time.Second
	for ctx.Err() == nil {
		select {
		case <-f.stop:
			return
		default:
		}
		_, err := queuesplit.Move(ctx, f.client.Load(), f.src, queuesplit.ReceiveWait, f.route)
		if err == nil || ctx.Err() != nil {
			f.lastErr.Store(nil)
			backoff = time.Second
			continue
		}
		msg := err.Error()
		f.lastErr.Store(&msg)
		select {
		case <-ctx.Done():
		case <-f.stop:
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// registryIdentity is the registry as every cluster knows it: the Primary's
// namespace/name, for tags that the Default's sweep reads.
func registryIdentity(r *mirrordv1alpha1.MirrordWorkloadQueueRegistry) string {
	if ns, name := r.Labels[mirrordv1alpha1.LabelParentNamespace], r.Labels[mirrordv1alpha1.LabelParentName]; ns != "" && name != "" {
		return ns + "/" + name
	}
	return r.Namespace + "/" + r.Name
}

// sqsAccess is how this cluster reaches the registry's SQS: the admin's Secret in the
// controller's namespace (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), or
// the controller's own identity.
func (c *Controller) sqsClient(ctx context.Context, r *mirrordv1alpha1.MirrordWorkloadQueueRegistry) (*sqs.Client, error) {
	a := queuesplit.Access{}
	if s := r.Spec.SQS; s != nil {
		a.Region, a.Endpoint = s.Region, s.Endpoint
		if s.CredentialsSecret != "" {
			sec, err := c.kube.CoreV1().Secrets(c.opts.Namespace).Get(ctx, s.CredentialsSecret, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("SQS credentials: Secret %s/%s: %w", c.opts.Namespace, s.CredentialsSecret, err)
			}
			a.AccessKeyID, a.SecretAccessKey, a.Session = string(sec.Data["AWS_ACCESS_KEY_ID"]), string(sec.Data["AWS_SECRET_ACCESS_KEY"]), string(sec.Data["AWS_SESSION_TOKEN"])
			if a.AccessKeyID == "" || a.SecretAccessKey == "" {
				return nil, fmt.Errorf("SQS credentials: Secret %s/%s needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", c.opts.Namespace, s.CredentialsSecret)
			}
		}
	}
	return queuesplit.NewClient(ctx, a)
}

// syncSplit brings registry key's split in line with the sessions on its consumer.
func (c *Controller) syncSplit(ctx context.Context, key cache.ObjectName) error {
	r, err := c.registries.MirrordWorkloadQueueRegistries(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		return c.forgetSplit(ctx, key)
	}
	if err != nil {
		return err
	}
	ns := registryConsumerNamespace(r, c.opts.Namespace, c.opts.Primary)
	if ns == "" {
		return nil // not one this cluster honours
	}
	defer c.splitQueue.AddAfter(key, splitResync)
	var children []*mirrordv1alpha1.MirrordClusterSession
	for _, o := range c.sessionIndex.List() {
		children = append(children, o.(*mirrordv1alpha1.MirrordClusterSession))
	}
	sessions := splitSessionsOf(children, ns, r.Spec.Consumer.Name)
	dep, err := c.deployments.Deployments(ns).Get(r.Spec.Consumer.Name)
	if apierrors.IsNotFound(err) {
		c.publishSplit(key.String(), sessions, nil, fmt.Sprintf("no deployment %s/%s here", ns, r.Spec.Consumer.Name))
		return nil
	}
	if err != nil {
		return err
	}
	if r.Spec.Consumer.WorkloadType != "" && r.Spec.Consumer.WorkloadType != mirrordv1alpha1.QueueConsumerDeployment {
		c.publishSplit(key.String(), sessions, nil, fmt.Sprintf("%s consumers are not split yet: only Deployments", r.Spec.Consumer.WorkloadType))
		return nil
	}
	if len(sessions) == 0 {
		if _, split := dep.Annotations[AnnotationQueueSplit]; !split {
			// Nothing to undo: no SQS call for a registry nobody uses.
			c.stopForwarders(key.String())
			c.publishSplit(key.String(), nil, nil, "")
			return nil
		}
	}
	client, err := c.sqsClient(ctx, r)
	if err != nil {
		c.publishSplit(key.String(), sessions, nil, err.Error())
		return err
	}
	if len(sessions) == 0 {
		return c.unsplit(ctx, key.String(), r, dep, client)
	}
	return c.split(ctx, key.String(), r, dep, sessions, client)
}

// split makes the queues, starts or updates the forwarders, and points the consumer at the
// fallbacks.
func (c *Controller) split(ctx context.Context, key string, r *mirrordv1alpha1.MirrordWorkloadQueueRegistry, dep *appsv1.Deployment,
	sessions []splitSession, client *sqs.Client) error {
	container, err := consumerContainer(dep, r.Spec.Consumer.Container)
	if err != nil {
		c.publishSplit(key, sessions, nil, err.Error())
		return nil
	}
	// The queues some session asks for, that the registry knows.
	var ids []string
	asked := map[string]bool{}
	for _, s := range sessions {
		for id := range s.filters {
			if _, known := r.Spec.Queues[id]; known && !asked[id] {
				asked[id] = true
				ids = append(ids, id)
			}
		}
	}
	sort.Strings(ids)
	var vars []string
	for _, id := range ids {
		q := r.Spec.Queues[id]
		if q.NameSource.EnvVar == "" {
			c.publishSplit(key, sessions, nil, fmt.Sprintf("queue %s: only nameSource.envVar is split yet", id))
			return nil
		}
		vars = append(vars, q.NameSource.EnvVar)
	}
	originals, err := consumerOriginals(dep, key, container, vars)
	if err != nil {
		c.publishSplit(key, sessions, nil, err.Error())
		return nil
	}

	split := registryIdentity(r)
	want := map[string]string{}                                        // the consumer's variables during the split
	told := map[string]map[string]mirrordv1alpha1.SessionQueueStatus{} // child → queue id → status
	var problems []string
	for _, id := range ids {
		q := r.Spec.Queues[id]
		orig, err := originalQueue(originals[q.NameSource.EnvVar], q)
		if err != nil {
			problems = append(problems, "queue "+id+": "+err.Error())
			continue
		}
		origURL, err := queuesplit.QueueURL(ctx, client, orig)
		if err != nil {
			problems = append(problems, "queue "+id+": "+err.Error())
			continue
		}
		tags := func(role, owner string) map[string]string {
			t := queuesplit.SplitQueueTags(nil, q.Tags, split, role, owner)
			t[TagOriginal] = origURL
			return t
		}
		fbName := queuesplit.QueueName(queuesplit.RoleFallback, []string{string(r.UID), id}, orig)
		fbURL, err := queuesplit.EnsureQueue(ctx, client, fbName, origURL, tags(queuesplit.RoleFallback, "cluster "+c.opts.ClusterName))
		if err != nil {
			problems = append(problems, "queue "+id+": "+err.Error())
			continue
		}
		want[q.NameSource.EnvVar] = queueValue(orig, fbName, fbURL)
		var filters []queuesplit.Filter
		for _, s := range sessions {
			pattern, ok := s.filters[id]
			if !ok {
				continue
			}
			st := mirrordv1alpha1.SessionQueueStatus{QueueID: id, Variable: q.NameSource.EnvVar}
			name := queuesplit.QueueName(queuesplit.RoleSession, []string{s.parentUID, id}, orig)
			var url string
			if c.opts.Default {
				url, err = queuesplit.EnsureQueue(ctx, client, name, origURL, tags(queuesplit.RoleSession, s.parent))
			} else {
				url, err = queuesplit.QueueURL(ctx, client, name)
				var missing *types.QueueDoesNotExist
				if errors.As(err, &missing) {
					err = fmt.Errorf("waiting for the Default cluster to make the session's queue %s", name)
				}
			}
			if err != nil {
				st.Message = err.Error()
			} else if f, ferr := queuesplit.CompileFilter(s.parent, url, pattern); ferr != nil {
				st.Message = ferr.Error()
			} else {
				filters = append(filters, f)
				if c.opts.Default {
					st.Value = queueValue(orig, name, url)
				}
			}
			if told[s.child] == nil {
				told[s.child] = map[string]mirrordv1alpha1.SessionQueueStatus{}
			}
			told[s.child][id] = st
		}
		c.runForwarder(ctx, key, id, client, origURL, fbURL, filters)
	}

	// A queue the registry does not know is said so, not prepared forever.
	for _, s := range sessions {
		for id := range s.filters {
			if _, known := r.Spec.Queues[id]; !known {
				if told[s.child] == nil {
					told[s.child] = map[string]mirrordv1alpha1.SessionQueueStatus{}
				}
				told[s.child][id] = mirrordv1alpha1.SessionQueueStatus{QueueID: id, Message: fmt.Sprintf("queue registry %s has no queue %q", split, id)}
			}
		}
	}

	// The consumer reads the fallbacks once its pods run the patched template.
	state := ""
	if len(want) > 0 {
		if _, recorded := dep.Annotations[AnnotationQueueSplit]; !recorded || !consumerHolds(container, want) {
			patch, err := splitPatch(splitRecord{Registry: key, Container: container.Name, Vars: originals}, want)
			if err != nil {
				return err
			}
			if _, err := c.kube.AppsV1().Deployments(dep.Namespace).Patch(ctx, dep.Name, k8stypes.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-mirrord"}); err != nil {
				return fmt.Errorf("pointing deployment %s/%s at the fallback queues: %w", dep.Namespace, dep.Name, err)
			}
			klog.FromContext(ctx).Info("Consumer points at the fallback queues", "deployment", klog.KObj(dep), "vars", want)
			state = "the consumer is rolling to the fallback queue"
		} else if ok, why := rolledOut(dep); !ok {
			state = "the consumer is rolling to the fallback queue: " + why
		}
	}
	if state != "" {
		c.splitQueue.AddAfter(cache.ObjectName{Namespace: r.Namespace, Name: r.Name}, 2*time.Second)
	}
	c.publishSplit(key, sessions, told, strings.Join(append(problems, state), "; "))
	return c.sweepSessionQueues(ctx, client, split, sessions)
}

// runForwarder starts, updates or (with no filters) keeps the forwarder of one queue.
func (c *Controller) runForwarder(ctx context.Context, registry, id string, client *sqs.Client, src, fallback string, filters []queuesplit.Filter) {
	c.splits.mu.Lock()
	defer c.splits.mu.Unlock()
	k := forwarderKey(registry, id)
	f := c.splits.forwarders[k]
	if f != nil && (f.src != src || f.fallback != fallback) {
		f.halt()
		f = nil
	}
	if f == nil {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &forwarder{src: src, fallback: fallback, stop: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
		f.client.Store(client)
		f.filters.Store(&filters)
		c.splits.forwarders[k] = f
		go func() {
			select { // the forwarder ends with this controller's leadership
			case <-ctx.Done():
				cancel()
			case <-f.done:
			}
		}()
		go f.run(fctx)
		return
	}
	f.client.Store(client)
	f.filters.Store(&filters)
}

// stopForwarders stops the forwarders of registry and waits for them.
func (c *Controller) stopForwarders(registry string) {
	c.splits.mu.Lock()
	var stopping []*forwarder
	for k, f := range c.splits.forwarders {
		if strings.HasPrefix(k, registry+"\x00") {
			stopping = append(stopping, f)
			delete(c.splits.forwarders, k)
		}
	}
	c.splits.mu.Unlock()
	for _, f := range stopping {
		f.halt()
	}
}

// halt stops f after its current move and waits for it.
func (f *forwarder) halt() {
	close(f.stop)
	<-f.done
	f.cancel()
}

// forwarderError is the last error of a registry's forwarders, if any.
func (c *Controller) forwarderError(registry string) string {
	c.splits.mu.Lock()
	defer c.splits.mu.Unlock()
	for k, f := range c.splits.forwarders {
		if strings.HasPrefix(k, registry+"\x00") {
			if e := f.lastErr.Load(); e != nil {
				return *e
			}
		}
	}
	return ""
}

// unsplit undoes a split with no session left, in steps a restarted controller resumes
// from the consumer's record: forwarders stop and the consumer's variables are restored
// (the record stays, marked restored); once its pods run the old template, the fallbacks (and
// in the Default, the sessions' queues) drain into the originals and go; then the record goes.
func (c *Controller) unsplit(ctx context.Context, key string, r *mirrordv1alpha1.MirrordWorkloadQueueRegistry, dep *appsv1.Deployment, client *sqs.Client) error {
	c.stopForwarders(key)
	c.publishSplit(key, nil, nil, "")
	rec, err := parseSplitRecord(dep.Annotations[AnnotationQueueSplit])
	if err != nil || rec.Registry != key {
		return err // another registry's split, or not ours to undo
	}
	again := cache.ObjectName{Namespace: r.Namespace, Name: r.Name}
	if !rec.Restored {
		if err := c.patchConsumer(ctx, dep, restorePatch, rec); err != nil {
			return fmt.Errorf("restoring deployment %s/%s's queues: %w", dep.Namespace, dep.Name, err)
		}
		klog.FromContext(ctx).Info("Consumer restored to its queues", "deployment", klog.KObj(dep))
		c.splitQueue.AddAfter(again, 2*time.Second)
		return nil
	}
	if ok, _ := rolledOut(dep); !ok {
		c.splitQueue.AddAfter(again, 2*time.Second)
		return nil // its old pods may still read a fallback
	}
	if err := c.drainSplitQueues(ctx, client, registryIdentity(r), func(tags map[string]string) bool {
		mine := tags[queuesplit.TagRole] == queuesplit.RoleFallback && tags[queuesplit.TagOwner] == "cluster "+c.opts.ClusterName
		return mine || (c.opts.Default && tags[queuesplit.TagRole] == queuesplit.RoleSession)
	}); err != nil {
		return err
	}
	return c.patchConsumer(ctx, dep, forgetPatch, rec)
}

// patchConsumer applies the patch build makes of rec to consumer d.
func (c *Controller) patchConsumer(ctx context.Context, d *appsv1.Deployment, build func(splitRecord) ([]byte, error), rec splitRecord) error {
	patch, err := build(rec)
	if err != nil {
		return err
	}
	_, err = c.kube.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, k8stypes.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-mirrord"})
	return err
}

// sweepSessionQueues drains and deletes, in the Default cluster, the queues of split's
// sessions that are no longer live here.
func (c *Controller) sweepSessionQueues(ctx context.Context, client *sqs.Client, split string, live []splitSession) error {
	if !c.opts.Default {
		return nil
	}
	owners := map[string]bool{}
	for _, s := range live {
		owners[s.parent] = true
	}
	return c.drainSplitQueues(ctx, client, split, func(tags map[string]string) bool {
		return tags[queuesplit.TagRole] == queuesplit.RoleSession && !owners[tags[queuesplit.TagOwner]]
	})
}

// drainSplitQueues drains into their originals, and deletes, the queues of split (by their
// tags) that pick takes.
func (c *Controller) drainSplitQueues(ctx context.Context, client *sqs.Client, split string, pick func(tags map[string]string) bool) error {
	made, err := queuesplit.SplitQueues(ctx, client)
	if err != nil {
		return err
	}
	var errs error
	for url, tags := range made {
		if tags[queuesplit.TagSplit] == split && pick(tags) {
			errs = errors.Join(errs, c.drainAndDelete(ctx, client, url, tags))
		}
	}
	return errs
}

// drainAndDelete returns what queue url holds to its original, then deletes it.
func (c *Controller) drainAndDelete(ctx context.Context, client *sqs.Client, url string, tags map[string]string) error {
	if orig := tags[TagOriginal]; orig != "" {
		dctx, cancel := context.WithTimeout(ctx, queuesplit.MoveVisibility+30*time.Second)
		n, err := queuesplit.Drain(dctx, client, url, orig)
		cancel()
		if err != nil {
			return fmt.Errorf("returning the messages of %s to %s: %w", queuesplit.NameOf(url), queuesplit.NameOf(orig), err)
		}
		klog.FromContext(ctx).Info("Split queue drained into its original", "queue", queuesplit.NameOf(url), "original", queuesplit.NameOf(orig), "messages", n)
	}
	return queuesplit.DeleteQueue(ctx, client, url)
}

// forgetSplit handles a registry that is gone: its forwarders stop and a consumer it split
// is restored (its fallbacks, tagged, wait for an admin: without the registry there is no
// SQS access to drain them).
func (c *Controller) forgetSplit(ctx context.Context, key cache.ObjectName) error {
	c.stopForwarders(key.String())
	c.publishSplit(key.String(), nil, nil, "")
	var errs error
	for _, o := range c.deploymentsAll() {
		raw, ok := o.Annotations[AnnotationQueueSplit]
		if !ok {
			continue
		}
		rec, err := parseSplitRecord(raw)
		if err != nil || rec.Registry != key.String() {
			continue
		}
		errs = errors.Join(errs, c.patchConsumer(ctx, o, restorePatch, rec), c.patchConsumer(ctx, o, forgetPatch, rec))
		klog.FromContext(ctx).Info("Queue registry gone: consumer restored; its fallback queues are left, tagged "+queuesplit.TagSplit, "deployment", klog.KObj(o))
	}
	return errs
}

// publishSplit records what registry key's sessions are told and wakes their children whose
// status changes. sessions without an entry in told get problem (or "preparing") for each
// queue they ask for.
func (c *Controller) publishSplit(key string, sessions []splitSession, told map[string]map[string]mirrordv1alpha1.SessionQueueStatus, problem string) {
	fwdErr := c.forwarderError(key)
	c.splits.mu.Lock()
	defer c.splits.mu.Unlock()
	next := map[string][]mirrordv1alpha1.SessionQueueStatus{}
	for _, s := range sessions {
		var sts []mirrordv1alpha1.SessionQueueStatus
		for _, id := range sortedNames(s.filters) {
			st, ok := told[s.child][id]
			if !ok {
				st = mirrordv1alpha1.SessionQueueStatus{QueueID: id, Message: "preparing the split"}
			}
			switch {
			case problem != "" && st.Message == "":
				st.Message = problem
			case fwdErr != "" && st.Message == "":
				st.Message = "forwarding: " + fwdErr
			}
			st.Ready = ok && st.Message == ""
			if len(st.Message) > 1024 {
				st.Message = st.Message[:1024]
			}
			sts = append(sts, st)
		}
		next[s.child] = sts
	}
	// Children this registry no longer splits for lose their entries; others keep theirs.
	for child := range c.splits.statuses {
		if _, still := next[child]; !still && c.splits.owner[child] == key {
			delete(c.splits.statuses, child)
			delete(c.splits.owner, child)
			c.enqueueChild(child)
		}
	}
	for child, sts := range next {
		if !reflect.DeepEqual(c.splits.statuses[child], sts) {
			c.splits.statuses[child] = sts
			c.enqueueChild(child)
		}
		c.splits.owner[child] = key
	}
}

func (c *Controller) enqueueChild(key string) {
	if ns, name, ok := strings.Cut(key, "/"); ok {
		c.queue.Add(cache.NewObjectName(ns, name))
	}
}

// queueStatuses are what child is told of its split queues: the splitter's word, or why
// there is none yet.
func (c *Controller) queueStatuses(child *mirrordv1alpha1.MirrordClusterSession) []mirrordv1alpha1.SessionQueueStatus {
	if len(child.Spec.Features.SplitQueues) == 0 {
		return nil
	}
	c.splits.mu.Lock()
	sts, ok := c.splits.statuses[child.Namespace+"/"+child.Name]
	c.splits.mu.Unlock()
	if ok {
		return sts
	}
	why := "waiting for this cluster's queue splitter"
	t := child.Spec.Target
	if t.Kind != mirrordv1alpha1.TargetKindDeployment {
		why = fmt.Sprintf("queues are split for Deployment targets; this session's target is a %s", t.Kind)
	} else if objs, err := c.registryIndex.ByIndex(indexConsumer, t.Namespace+"/"+t.Name); err == nil && len(objs) == 0 {
		why = fmt.Sprintf("no MirrordWorkloadQueueRegistry in this cluster names deployment %s/%s as its consumer", t.Namespace, t.Name)
	}
	var out []mirrordv1alpha1.SessionQueueStatus
	for _, q := range child.Spec.Features.SplitQueues {
		out = append(out, mirrordv1alpha1.SessionQueueStatus{QueueID: q.QueueID, Message: why})
	}
	return out
}

// deploymentsAll lists every Deployment this controller sees.
func (c *Controller) deploymentsAll() []*appsv1.Deployment {
	ds, _ := c.deployments.List(labels.Everything())
	return ds
}

// watchSplits wires queue splitting to its informers: a registry is looked at when it, its
// consumer Deployment, or a session on that consumer changes.
func (c *Controller) watchSplits(sessions, deployments cache.SharedIndexInformer, registries mirrordinformersv1alpha1.MirrordWorkloadQueueRegistryInformer) error {
	c.splits, c.splitQueue = newSplitter(), worker.NewQueue(splitControllerName)
	inf := registries.Informer()
	if err := inf.AddIndexers(cache.Indexers{indexConsumer: func(obj any) ([]string, error) {
		r := obj.(*mirrordv1alpha1.MirrordWorkloadQueueRegistry)
		if ns := registryConsumerNamespace(r, c.opts.Namespace, c.opts.Primary); ns != "" {
			return []string{ns + "/" + r.Spec.Consumer.Name}, nil
		}
		return nil, nil
	}}); err != nil {
		return err
	}
	c.registries, c.registryIndex = registries.Lister(), inf.GetIndexer()
	c.synced = append(c.synced, inf.HasSynced)
	if _, err := inf.AddEventHandler(worker.Handler(c.splitQueue)); err != nil {
		return err
	}
	// A registry appearing or going changes what its consumer's sessions are told.
	if _, err := inf.AddEventHandler(worker.FuncHandler(func(obj any) {
		if r, ok := obj.(*mirrordv1alpha1.MirrordWorkloadQueueRegistry); ok {
			c.enqueueIndexed(indexTargetNamespace, registryConsumerNamespace(r, c.opts.Namespace, c.opts.Primary))
		}
	})); err != nil {
		return err
	}
	byConsumer := func(ns, name string) {
		objs, err := c.registryIndex.ByIndex(indexConsumer, ns+"/"+name)
		if err != nil {
			return
		}
		for _, o := range objs {
			worker.Enqueue(c.splitQueue, o)
		}
	}
	if _, err := sessions.AddEventHandler(worker.FuncHandler(func(obj any) {
		if ch, ok := obj.(*mirrordv1alpha1.MirrordClusterSession); ok && len(ch.Spec.Features.SplitQueues) > 0 && ch.Spec.Target.Kind == mirrordv1alpha1.TargetKindDeployment {
			byConsumer(ch.Spec.Target.Namespace, ch.Spec.Target.Name)
		}
	})); err != nil {
		return err
	}
	if _, err := deployments.AddEventHandler(worker.FuncHandler(func(obj any) {
		if d, ok := obj.(*appsv1.Deployment); ok {
			byConsumer(d.Namespace, d.Name)
		}
	})); err != nil {
		return err
	}
	return nil
}
