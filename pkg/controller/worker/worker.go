// Package worker holds what every controller of kubectl-mirrord shares: a typed, rate-limited
// workqueue of object names, the loop that drains it, and its metrics.
package worker

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// Queue is a controller's workqueue of namespace/name keys.
type Queue = workqueue.TypedRateLimitingInterface[cache.ObjectName]

// Requeue asks for the key to be processed again after a delay without counting as an error
// (a TTL that has not run out yet).
type Requeue struct{ After time.Duration }

func (r *Requeue) Error() string { return "requeue after " + r.After.String() }

// NewQueue returns a rate-limited queue named for its metrics.
func NewQueue(name string) Queue {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[cache.ObjectName](),
		workqueue.TypedRateLimitingQueueConfig[cache.ObjectName]{Name: name},
	)
}

// Enqueue adds obj's key; it accepts the tombstones of delete events.
func Enqueue(q Queue, obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	key, err := cache.ObjectToName(obj)
	if err != nil {
		return
	}
	q.Add(key)
}

// Handler returns event handlers that enqueue the object itself.
func Handler(q Queue) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { Enqueue(q, obj) },
		UpdateFunc: func(_, obj any) { Enqueue(q, obj) },
		DeleteFunc: func(obj any) { Enqueue(q, obj) },
	}
}

// FuncHandler calls f with every added, updated or deleted object (tombstones unwrapped).
func FuncHandler(f func(obj any)) cache.ResourceEventHandler {
	unwrap := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		f(obj)
	}
	return cache.ResourceEventHandlerFuncs{AddFunc: unwrap, UpdateFunc: func(_, obj any) { unwrap(obj) }, DeleteFunc: unwrap}
}

var (
	reconciles = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubectl_mirrord_reconcile_total", Help: "Reconciles by controller and result.",
	}, []string{"controller", "result"})
	reconcileSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "kubectl_mirrord_reconcile_duration_seconds", Help: "Time spent in one reconcile.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	}, []string{"controller"})
)

// Collectors are this package's metrics, for the controller's registry.
func Collectors() []prometheus.Collector { return []prometheus.Collector{reconciles, reconcileSeconds} }

// Run drains q with workers goroutines until ctx ends, calling sync for each key. Errors are
// retried with backoff; a *Requeue schedules the key again without backoff.
func Run(ctx context.Context, name string, q Queue, workers int, sync func(context.Context, cache.ObjectName) error) {
	logger := klog.FromContext(ctx).WithValues("controller", name)
	go func() {
		<-ctx.Done()
		q.ShutDown()
	}()
	for range workers {
		go wait.UntilWithContext(ctx, func(ctx context.Context) {
			for processNext(klog.NewContext(ctx, logger), name, q, sync) {
			}
		}, time.Second)
	}
	<-ctx.Done()
}

// conflictRetry is how soon a reconcile that hit a write conflict runs again.
const conflictRetry = 100 * time.Millisecond

func processNext(ctx context.Context, name string, q Queue, sync func(context.Context, cache.ObjectName) error) bool {
	key, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(key)
	logger := klog.FromContext(ctx).WithValues("key", key.String())
	start := time.Now()
	err := sync(klog.NewContext(ctx, logger), key)
	reconcileSeconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
	var rq *Requeue
	switch {
	case err == nil:
		reconciles.WithLabelValues(name, "ok").Inc()
		q.Forget(key)
	case errors.As(err, &rq):
		reconciles.WithLabelValues(name, "requeue").Inc()
		q.Forget(key)
		q.AddAfter(key, rq.After)
	case apierrors.IsConflict(err):
		// The cache was behind our own last write; the watch event of that write is on its
		// way. Retry soon, outside the error backoff, whose overall 10/s bucket would make a
		// burst of sessions wait in line.
		reconciles.WithLabelValues(name, "conflict").Inc()
		q.Forget(key)
		q.AddAfter(key, conflictRetry)
	default:
		reconciles.WithLabelValues(name, "error").Inc()
		logger.Error(err, "Reconcile failed, retrying")
		q.AddRateLimited(key)
	}
	return true
}
