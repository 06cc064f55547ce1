package worker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
)

// TestProcessNext checks how each result of a reconcile brings its key back.
func TestProcessNext(t *testing.T) {
	gr := schema.GroupResource{Group: "kubectl-mirrord.io", Resource: "mirrordsessions"}
	key := cache.NewObjectName("ns", "s")
	for _, tc := range []struct {
		name        string
		err         error
		wantBack    bool // the key is queued again
		wantBackoff bool // through the error backoff
	}{
		{"ok", nil, false, false},
		{"error", errors.New("boom"), true, true},
		{"wrapped conflict", fmt.Errorf("updating status: %w", apierrors.NewConflict(gr, "s", errors.New("modified"))), true, false},
		{"requeue", &Requeue{After: 10 * time.Millisecond}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := NewQueue("test-" + tc.name)
			defer q.ShutDown()
			q.Add(key)
			processNext(context.Background(), "test", q, func(context.Context, cache.ObjectName) error { return tc.err })
			if got := q.NumRequeues(key) > 0; got != tc.wantBackoff {
				t.Errorf("in error backoff = %v, want %v", got, tc.wantBackoff)
			}
			back := make(chan bool, 1)
			go func() {
				_, quit := q.Get()
				back <- !quit
			}()
			select {
			case got := <-back:
				if !tc.wantBack {
					t.Errorf("key queued again (%v), want not", got)
				}
			case <-time.After(500 * time.Millisecond):
				if tc.wantBack {
					t.Error("key not queued again within 500ms")
				}
			}
		})
	}
}
