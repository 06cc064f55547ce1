// Package branchlife is the Primary's bookkeeping of database branches (MirrordDBBranch): which
// sessions use each (those whose spec names it), when the last of them ended, and the
// branch's deletion once its TTL has passed since then. The Default cluster makes and serves
// the branch (member/dbbranch.go); this decides how long it lives.
package branchlife

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	corev1 "k8s.io/api/core/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/worker"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
	mirrordinformers "github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/informers/externalversions"
	mirrordlisters "github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/listers/mirrord/v1alpha1"
)

// ControllerName names this controller in logs, metrics and events.
const ControllerName = "branchlife"

// Life is a branch's lifetime, as its status says it.
type Life struct {
	Sessions   []string
	LastUsed   *metav1.Time
	ExpireTime *metav1.Time
}

// Decide is branch b's life now: the sessions naming it (sorted), when the last one ended
// (now, the first time none does; its creation when none ever did, from the end of its
// creation timeout), and when it expires (none while a session uses it); expired says
// delete it now.
func Decide(b *mirrordv1alpha1.MirrordDBBranch, sessions []string, now time.Time) (life Life, expired bool) {
	slices.Sort(sessions)
	life.Sessions = sessions
	if len(sessions) > 0 {
		life.LastUsed = b.Status.LastUsedTime
		return life, false
	}
	switch {
	case len(b.Status.Sessions) > 0: // the last one just ended
		life.LastUsed = &metav1.Time{Time: now}
	case b.Status.LastUsedTime != nil:
		life.LastUsed = b.Status.LastUsedTime
	default: // never used: its TTL counts once it had its time to become Ready
		timeout := time.Duration(b.Spec.CreationTimeoutSeconds) * time.Second
		life.LastUsed = &metav1.Time{Time: b.CreationTimestamp.Add(timeout)}
	}
	expire := life.LastUsed.Add(time.Duration(b.Spec.TTLSeconds) * time.Second)
	life.ExpireTime = &metav1.Time{Time: expire}
	return life, !now.Before(expire)
}

// Controller keeps every branch's life.
type Controller struct {
	mirrord  versioned.Interface
	recorder record.EventRecorder
	clock    clock.PassiveClock
	queue    worker.Queue
	branches mirrordlisters.MirrordDBBranchLister
	sessions mirrordlisters.MirrordSessionLister
	synced   []cache.InformerSynced
}

// New wires the controller to the Primary's informers.
func New(mirrord versioned.Interface, mirrordAll mirrordinformers.SharedInformerFactory, recorder record.EventRecorder, clk clock.PassiveClock) (*Controller, error) {
	if clk == nil {
		clk = clock.RealClock{}
	}
	branches, sessions := mirrordAll.Mirrord().V1alpha1().MirrordDBBranches(), mirrordAll.Mirrord().V1alpha1().MirrordSessions()
	c := &Controller{mirrord: mirrord, recorder: recorder, clock: clk, queue: worker.NewQueue(ControllerName),
		branches: branches.Lister(), sessions: sessions.Lister(),
		synced: []cache.InformerSynced{branches.Informer().HasSynced, sessions.Informer().HasSynced}}
	if _, err := branches.Informer().AddEventHandler(worker.Handler(c.queue)); err != nil {
		return nil, err
	}
	// A session starting or ending changes the life of the branches it names.
	if _, err := sessions.Informer().AddEventHandler(worker.FuncHandler(func(obj any) {
		if s, ok := obj.(*mirrordv1alpha1.MirrordSession); ok {
			for _, name := range s.Spec.Features.DBBranches {
				c.queue.Add(cache.NewObjectName(s.Namespace, name))
			}
		}
	})); err != nil {
		return nil, err
	}
	return c, nil
}

// Run keeps the branches' lives until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	if !cache.WaitForNamedCacheSync(ControllerName, ctx.Done(), c.synced...) {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%s: caches did not sync", ControllerName)
	}
	worker.Run(ctx, ControllerName, c.queue, 2, c.sync)
	return nil
}

func (c *Controller) sync(ctx context.Context, key cache.ObjectName) error {
	b, err := c.branches.MirrordDBBranches(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil || b.DeletionTimestamp != nil {
		return err
	}
	all, err := c.sessions.MirrordSessions(key.Namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	var using []string
	for _, s := range all {
		if s.DeletionTimestamp == nil && s.Status.Phase != mirrordv1alpha1.SessionFailed && slices.Contains(s.Spec.Features.DBBranches, b.Name) {
			using = append(using, s.Name)
		}
	}
	now := c.clock.Now()
	life, expired := Decide(b, using, now)
	if expired {
		c.recorder.Eventf(b, corev1.EventTypeNormal, mirrordv1alpha1.ReasonBranchExpired, "No session used the branch for its TTL (%ds): deleting it", b.Spec.TTLSeconds)
		err := c.mirrord.MirrordV1alpha1().MirrordDBBranches(b.Namespace).Delete(ctx, b.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(b.UID)}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		if err == nil {
			klog.FromContext(ctx).V(1).Info("Deleted an expired database branch", "branch", key)
		}
		return err
	}
	if !slices.Equal(life.Sessions, b.Status.Sessions) || !equalTime(life.LastUsed, b.Status.LastUsedTime) || !equalTime(life.ExpireTime, b.Status.ExpireTime) {
		patch, err := json.Marshal(map[string]any{"status": map[string]any{
			"sessions": life.Sessions, "lastUsedTime": life.LastUsed, "expireTime": life.ExpireTime}})
		if err != nil {
			return err
		}
		if _, err := c.mirrord.MirrordV1alpha1().MirrordDBBranches(b.Namespace).Patch(ctx, b.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
	}
	if life.ExpireTime != nil {
		return &worker.Requeue{After: life.ExpireTime.Sub(now) + 100*time.Millisecond}
	}
	return nil
}

// equalTime compares to the second: a status holds RFC 3339 seconds, and metav1.Time.Equal
// would see this reconcile's now as new against its own write, and write again.
func equalTime(a, b *metav1.Time) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && a.Unix() == b.Unix())
}
