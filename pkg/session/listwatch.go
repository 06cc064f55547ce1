package session

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// cacheListWatch adapts typed list and watch calls to a cache.ListWatch.
type cacheListWatch struct {
	list  func(metav1.ListOptions) (*mirrordv1alpha1.MirrordSessionList, error)
	watch func(metav1.ListOptions) (watch.Interface, error)
}

func (l *cacheListWatch) listWatch() *cache.ListWatch {
	return &cache.ListWatch{
		ListFunc:  func(o metav1.ListOptions) (runtime.Object, error) { return l.list(o) },
		WatchFunc: l.watch,
	}
}
