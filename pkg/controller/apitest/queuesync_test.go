package apitest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/naming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/roles"
)

// TestQueueRegistrySync: a management-only Primary (c1) copies an admin's queue registry into
// its Workload cluster (c2, another API server) with its member credentials and RBAC there,
// keeps the copy current when the registry is edited, says so in the registry's status, and
// deletes the copy with the registry; a registry deleted while c2 is unreachable goes from
// c2 once it answers, and the status says which cluster is behind meanwhile.
func TestQueueRegistrySync(t *testing.T) {
	t.Parallel()
	p, w := Start(t), Start(t)
	p.Install(t, "primary-management-only")
	w.Install(t, "workload-default")
	ctx := t.Context()
	for _, s := range []*Server{p, w} {
		if _, err := s.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hc"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	register := registerMember(t, p, w, "c2", true)
	register(w.Config.Host)
	runControllerAs(t, p, "c1", roles.KeyPrimary, roles.KeyManagementOnly)
	runControllerAs(t, w, "c2", roles.KeyWorkload, roles.KeyDefault)

	registries := p.Mirrord.MirrordV1alpha1().MirrordWorkloadQueueRegistries("hc")
	newRegistry := func(name string) *mirrordv1alpha1.MirrordWorkloadQueueRegistry {
		r, err := registries.Create(ctx, &mirrordv1alpha1.MirrordWorkloadQueueRegistry{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: mirrordv1alpha1.MirrordWorkloadQueueRegistrySpec{
				Consumer: mirrordv1alpha1.QueueConsumer{Name: "orders", WorkloadType: mirrordv1alpha1.QueueConsumerDeployment},
				Queues: map[string]mirrordv1alpha1.SplitQueue{"orders": {QueueType: mirrordv1alpha1.QueueTypeSQS,
					NameSource: mirrordv1alpha1.QueueNameSource{EnvVar: "ORDERS_QUEUE"}}},
			}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	copyOf := func(ctx context.Context, r *mirrordv1alpha1.MirrordWorkloadQueueRegistry) (*mirrordv1alpha1.MirrordWorkloadQueueRegistry, error) {
		return w.Mirrord.MirrordV1alpha1().MirrordWorkloadQueueRegistries("mirrord-system").Get(ctx, naming.QueueRegistryCopy("c1", "hc", r.Name, r.UID), metav1.GetOptions{})
	}
	synced := func(ctx context.Context, name string, want metav1.ConditionStatus) (*mirrordv1alpha1.MirrordWorkloadQueueRegistry, error) {
		got, err := registries.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, mirrordv1alpha1.ConditionSynced)
		if c == nil || c.Status != want || got.Status.ObservedGeneration != got.Generation {
			return got, fmt.Errorf("status %+v", got.Status)
		}
		return got, nil
	}

	r := newRegistry("orders")
	waitFor(t, "the copy in c2, and Synced", func(ctx context.Context) error {
		cp, err := copyOf(ctx, r)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(cp.Spec, r.Spec) || cp.Labels[mirrordv1alpha1.LabelParentUID] != string(r.UID) {
			return fmt.Errorf("copy %+v %v", cp.Spec, cp.Labels)
		}
		got, err := synced(ctx, r.Name, metav1.ConditionTrue)
		if err == nil && (len(got.Status.Clusters) != 1 || got.Status.Clusters[0].Name != "c2" || !got.Status.Clusters[0].Synced) {
			err = fmt.Errorf("clusters %+v", got.Status.Clusters)
		}
		return err
	})

	// Edited: the copy follows.
	r, _ = registries.Get(ctx, r.Name, metav1.GetOptions{})
	r.Spec.Queues["payments"] = mirrordv1alpha1.SplitQueue{QueueType: mirrordv1alpha1.QueueTypeSQS, NameSource: mirrordv1alpha1.QueueNameSource{RegexPattern: "^PAY_.*_QUEUE$"}}
	if r, err := registries.Update(ctx, r, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	} else {
		waitFor(t, "the edit copied", func(ctx context.Context) error {
			cp, err := copyOf(ctx, r)
			if err == nil && !reflect.DeepEqual(cp.Spec, r.Spec) {
				err = fmt.Errorf("copy %+v", cp.Spec)
			}
			if err == nil {
				_, err = synced(ctx, r.Name, metav1.ConditionTrue)
			}
			return err
		})
	}

	// Deleted: the copy goes.
	if err := registries.Delete(ctx, r.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the copy gone", func(ctx context.Context) error {
		if _, err := copyOf(ctx, r); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the copy is still there (%v)", err)
		}
		return nil
	})

	// c2 unreachable: a registry's status says it is behind; one deleted meanwhile goes from c2
	// once it answers, and the other is copied then.
	kept := newRegistry("kept")
	waitFor(t, "a second registry's copy", func(ctx context.Context) error { _, err := copyOf(ctx, kept); return err })
	register("https://127.0.0.1:" + freePorts(t, 1)[0])
	late := newRegistry("late")
	waitFor(t, "the status saying c2 is behind", func(ctx context.Context) error {
		got, err := synced(ctx, late.Name, metav1.ConditionFalse)
		if err == nil && (len(got.Status.Clusters) != 1 || got.Status.Clusters[0].Synced) {
			err = fmt.Errorf("clusters %+v", got.Status.Clusters)
		}
		return err
	})
	if err := registries.Delete(ctx, kept.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the Primary would delete it now, if it could
	if _, err := copyOf(ctx, kept); err != nil {
		t.Fatalf("the copy of a registry deleted while c2 was unreachable: %v (want it there until c2 answers)", err)
	}
	register(w.Config.Host)
	waitFor(t, "the deleted registry's copy gone, the late one copied", func(ctx context.Context) error {
		if _, err := copyOf(ctx, kept); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the deleted registry's copy is still there (%v)", err)
		}
		if _, err := copyOf(ctx, late); err != nil {
			return err
		}
		_, err := synced(ctx, late.Name, metav1.ConditionTrue)
		return err
	})
}
