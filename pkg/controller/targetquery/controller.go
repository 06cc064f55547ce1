// Package targetquery is the Primary's controller of MirrordTargetQueries (`kubectl mirrord
// ls`): it asks every Workload cluster which targets the query's namespace has (each through
// its relay, with the Primary's own credentials there), keeps those RBAC on the Primary lets
// the query's owner run sessions on, writes the answer, and deletes the query minutes later.
package targetquery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/authz"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/roles"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/worker"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
	mirrordinformers "github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/informers/externalversions"
	mirrordlisters "github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/listers/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// ControllerName names this controller in logs and metrics.
const ControllerName = "targetquery"

// Keep is how long an answered query stays for its CLI to read (which deletes it at once); a
// CLI killed before that leaves nothing for longer.
const Keep = 2 * time.Minute

// Options configure the controller.
type Options struct {
	Roles roles.Roles
	// Ask asks a registered member cluster's relay (relayserver.Server.AskTargets).
	Ask func(ctx context.Context, cluster string, q protocol.TargetsQuery) (protocol.TargetsAnswer, error)
	// Own answers from the Primary's own cluster when it is also a Workload.
	Own     func(ctx context.Context, q protocol.TargetsQuery) (protocol.TargetsAnswer, error)
	Workers int
	Clock   clock.PassiveClock
}

// Controller answers MirrordTargetQueries.
type Controller struct {
	kube     kubernetes.Interface
	mirrord  versioned.Interface
	opts     Options
	queue    worker.Queue
	queries  mirrordlisters.MirrordTargetQueryLister
	clusters mirrordlisters.MirrordClusterLister
	synced   []cache.InformerSynced
}

// New wires the controller to the Primary's informers.
func New(kube kubernetes.Interface, mirrord versioned.Interface, mirrordAll mirrordinformers.SharedInformerFactory, opts Options) (*Controller, error) {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Workers < 1 {
		opts.Workers = 1
	}
	queries, clusters := mirrordAll.Mirrord().V1alpha1().MirrordTargetQueries(), mirrordAll.Mirrord().V1alpha1().MirrordClusters()
	c := &Controller{kube: kube, mirrord: mirrord, opts: opts, queue: worker.NewQueue(ControllerName),
		queries: queries.Lister(), clusters: clusters.Lister(),
		synced: []cache.InformerSynced{queries.Informer().HasSynced, clusters.Informer().HasSynced}}
	if _, err := queries.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) { worker.Enqueue(c.queue, obj) }}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run answers queries until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	ctx = klog.NewContext(ctx, klog.FromContext(ctx).WithValues("controller", ControllerName))
	if !cache.WaitForNamedCacheSync(ControllerName, ctx.Done(), c.synced...) {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%s: caches did not sync", ControllerName)
	}
	worker.Run(ctx, ControllerName, c.queue, c.opts.Workers, c.sync)
	return nil
}

func (c *Controller) sync(ctx context.Context, key cache.ObjectName) error {
	q, err := c.queries.MirrordTargetQueries(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if q.Status.Phase != "" {
		return c.expire(ctx, q)
	}
	st := c.answer(ctx, q)
	now := metav1.NewTime(c.opts.Clock.Now())
	st.CompletedAt = &now
	q = q.DeepCopy()
	q.Status = st
	if _, err := c.mirrord.MirrordV1alpha1().MirrordTargetQueries(q.Namespace).UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // its CLI gave up and deleted it
		}
		return err
	}
	klog.FromContext(ctx).V(2).Info("Answered a targets query", "owner", q.Spec.Owner, "targets", len(st.Targets), "phase", st.Phase)
	return &worker.Requeue{After: Keep}
}

// expire deletes an answered query once Keep has passed since its answer.
func (c *Controller) expire(ctx context.Context, q *mirrordv1alpha1.MirrordTargetQuery) error {
	at := q.CreationTimestamp.Time
	if q.Status.CompletedAt != nil {
		at = q.Status.CompletedAt.Time
	}
	if left := Keep - c.opts.Clock.Since(at); left > 0 {
		return &worker.Requeue{After: left}
	}
	err := c.mirrord.MirrordV1alpha1().MirrordTargetQueries(q.Namespace).Delete(ctx, q.Name,
		metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(q.UID)}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// answer asks every Workload cluster at once, then RBAC.
func (c *Controller) answer(ctx context.Context, q *mirrordv1alpha1.MirrordTargetQuery) mirrordv1alpha1.MirrordTargetQueryStatus {
	ask := protocol.TargetsQuery{Namespace: q.Namespace, Kinds: q.Spec.Kinds}
	answers := c.askMembers(ctx, ask)
	found := merge(answers)
	kindAllowed := map[mirrordv1alpha1.TargetKind]bool{}
	var reviewErr error
	for _, k := range kindsOf(found) {
		ok, err := c.review(ctx, q, k, "")
		kindAllowed[k] = ok
		reviewErr = errors.Join(reviewErr, err)
	}
	names, more := namesToReview(found, kindAllowed)
	nameAllowed := map[object]bool{}
	for _, o := range names {
		ok, err := c.review(ctx, q, o.kind, o.name)
		nameAllowed[o] = ok
		reviewErr = errors.Join(reviewErr, err)
	}
	st := decide(answers, found, kindAllowed, nameAllowed, more)
	if reviewErr != nil {
		// A review that could not be asked counts as a denial; say so rather than hide it.
		st.Message = joinNote(st.Message, "RBAC could not be asked about some targets, which are left out: "+reviewErr.Error())
	}
	return st
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// askMembers asks the Primary itself (when it is a Workload) and every registered Workload
// cluster, in parallel; answers are sorted by cluster.
func (c *Controller) askMembers(ctx context.Context, q protocol.TargetsQuery) []clusterAnswer {
	var answers []clusterAnswer
	var mu sync.Mutex
	var wg sync.WaitGroup
	do := func(name string, f func(context.Context) (protocol.TargetsAnswer, error)) {
		wg.Go(func() {
			a, err := f(ctx)
			mu.Lock()
			defer mu.Unlock()
			answers = append(answers, clusterAnswer{name: name, answer: a, err: err})
		})
	}
	if c.opts.Roles.Workload && c.opts.Own != nil {
		do(c.opts.Roles.ClusterName, func(ctx context.Context) (protocol.TargetsAnswer, error) { return c.opts.Own(ctx, q) })
	}
	clusters, err := c.clusters.List(labels.Everything())
	if err == nil {
		sort.Slice(clusters, func(i, j int) bool { return clusters[i].Name < clusters[j].Name })
		for _, mc := range clusters {
			if !mc.Spec.Workload || mc.Name == c.opts.Roles.ClusterName || c.opts.Ask == nil {
				continue
			}
			do(mc.Name, func(ctx context.Context) (protocol.TargetsAnswer, error) { return c.opts.Ask(ctx, mc.Name, q) })
		}
	}
	wg.Wait()
	slices.SortFunc(answers, func(a, b clusterAnswer) int { return strings.Compare(a.name, b.name) })
	return answers
}

// review asks RBAC on the Primary whether the query's owner holds the mirrord verb on kind
// (every object of the namespace when name is empty): the review a session's own owner gets.
func (c *Controller) review(ctx context.Context, q *mirrordv1alpha1.MirrordTargetQuery, kind mirrordv1alpha1.TargetKind, name string) (bool, error) {
	sar, ok := authz.AccessReview(mirrordv1alpha1.MirrordSessionSpec{Owner: q.Spec.Owner, OwnerGroups: q.Spec.OwnerGroups,
		Target: mirrordv1alpha1.Target{Kind: kind, Name: name, Namespace: q.Namespace}})
	if !ok {
		return false, nil
	}
	r, err := c.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", sar.Spec.ResourceAttributes.Resource, name, err)
	}
	return r.Status.Allowed, nil
}
