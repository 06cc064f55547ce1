package member

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestRegistryConsumerNamespace(t *testing.T) {
	copied := &mirrordv1alpha1.MirrordWorkloadQueueRegistry{ObjectMeta: metav1.ObjectMeta{Namespace: "mirrord-system", Name: "q-1",
		Labels: map[string]string{mirrordv1alpha1.LabelPrimary: "c1", mirrordv1alpha1.LabelParentNamespace: "shop"}}}
	own := &mirrordv1alpha1.MirrordWorkloadQueueRegistry{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "q"}}
	planted := &mirrordv1alpha1.MirrordWorkloadQueueRegistry{ObjectMeta: metav1.ObjectMeta{Namespace: "mirrord-system", Name: "x"}}
	cases := []struct {
		name    string
		r       *mirrordv1alpha1.MirrordWorkloadQueueRegistry
		primary bool
		want    string
	}{
		{"the Primary's copy, in a member", copied, false, "shop"},
		{"the Primary's copy, in a Primary", copied, true, "shop"},
		{"an admin's own, in the Primary", own, true, "shop"},
		{"an admin's own, in a member: not the Primary's word", own, false, ""},
		{"unlabelled in the controller's namespace", planted, false, ""},
		{"unlabelled in the controller's namespace of a Primary", planted, true, ""},
	}
	for _, c := range cases {
		if got := registryConsumerNamespace(c.r, "mirrord-system", c.primary); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func consumer(env ...corev1.EnvVar) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "worker", Generation: 2},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "sidecar", Image: "s", Env: []corev1.EnvVar{{Name: "QUEUE", Value: "sidecar-q"}}},
			{Name: "app", Image: "a", Env: env},
		}}}}}
}

func TestConsumerOriginals(t *testing.T) {
	plain := consumer(corev1.EnvVar{Name: "QUEUE", Value: "orders"}, corev1.EnvVar{Name: "OTHER", Value: "x"})
	c, err := consumerContainer(plain, "app")
	if err != nil {
		t.Fatal(err)
	}
	got, err := consumerOriginals(plain, "mirrord-system/r", c, []string{"QUEUE", "MISSING"})
	if err != nil || got["QUEUE"] != (originalVar{Value: "orders", Present: true}) || got["MISSING"] != (originalVar{}) || len(got) != 2 {
		t.Errorf("from the container: %v, %v", got, err)
	}
	if first, _ := consumerContainer(plain, ""); first.Name != "sidecar" {
		t.Errorf("no container named: %s, want the first", first.Name)
	}
	if _, err := consumerContainer(plain, "nope"); err == nil || !strings.Contains(err.Error(), `no container "nope"`) {
		t.Errorf("unknown container: %v", err)
	}

	// Split already: the record is the truth, not the patched variable.
	split := consumer(corev1.EnvVar{Name: "QUEUE", Value: "mirrord-f-123-orders"})
	rec, _ := json.Marshal(splitRecord{Registry: "mirrord-system/r", Container: "app", Vars: map[string]originalVar{"QUEUE": {Value: "orders", Present: true}}})
	split.Annotations = map[string]string{AnnotationQueueSplit: string(rec)}
	c, _ = consumerContainer(split, "app")
	if got, err := consumerOriginals(split, "mirrord-system/r", c, []string{"QUEUE"}); err != nil || got["QUEUE"].Value != "orders" {
		t.Errorf("from the record: %v, %v", got, err)
	}
	if _, err := consumerOriginals(split, "mirrord-system/other", c, []string{"QUEUE"}); err == nil || !strings.Contains(err.Error(), "split by queue registry mirrord-system/r already") {
		t.Errorf("another registry's split: %v", err)
	}
	split.Annotations[AnnotationQueueSplit] = "{"
	if _, err := consumerOriginals(split, "mirrord-system/r", c, []string{"QUEUE"}); err == nil {
		t.Error("a broken record was read")
	}

	ref := consumer(corev1.EnvVar{Name: "QUEUE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{Key: "q"}}})
	c, _ = consumerContainer(ref, "app")
	if _, err := consumerOriginals(ref, "k", c, []string{"QUEUE"}); err == nil || !strings.Contains(err.Error(), "only a literal value can be split") {
		t.Errorf("valueFrom: %v", err)
	}
}

func TestOriginalQueueAndValue(t *testing.T) {
	q := mirrordv1alpha1.SplitQueue{NameSource: mirrordv1alpha1.QueueNameSource{EnvVar: "QUEUE"}, FallbackName: "fallback-q"}
	for _, c := range []struct {
		v       originalVar
		q       mirrordv1alpha1.SplitQueue
		want    string
		wantErr bool
	}{
		{originalVar{Value: "orders", Present: true}, q, "orders", false},
		{originalVar{}, q, "fallback-q", false},
		{originalVar{Present: true}, q, "fallback-q", false},
		{originalVar{}, mirrordv1alpha1.SplitQueue{NameSource: q.NameSource}, "", true},
	} {
		got, err := originalQueue(c.v, c.q)
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("originalQueue(%v) = %q, %v; want %q", c.v, got, err, c.want)
		}
	}
	if got := queueValue("orders", "n", "http://u/n"); got != "n" {
		t.Errorf("a name for a name: %s", got)
	}
	if got := queueValue("https://sqs.eu-west-1.amazonaws.com/1/orders", "n", "https://u/n"); got != "https://u/n" {
		t.Errorf("a URL for a URL: %s", got)
	}
}

// apply applies a strategic merge patch to d, as the API server does.
func apply(t *testing.T, d *appsv1.Deployment, patch []byte) *appsv1.Deployment {
	t.Helper()
	orig, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	out, err := strategicpatch.StrategicMergePatch(orig, patch, appsv1.Deployment{})
	if err != nil {
		t.Fatal(err)
	}
	var res appsv1.Deployment
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

func envOf(d *appsv1.Deployment, container string) map[string]string {
	out := map[string]string{}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == container {
			for _, e := range c.Env {
				out[e.Name] = e.Value
			}
		}
	}
	return out
}

// TestSplitAndRestorePatch: the split points only the named container's variables at the
// fallbacks (another container's variable of the same name untouched), records the
// originals, and the restore puts back exactly what was there, deleting a variable the
// split added.
func TestSplitAndRestorePatch(t *testing.T) {
	d := consumer(corev1.EnvVar{Name: "QUEUE", Value: "orders"}, corev1.EnvVar{Name: "OTHER", Value: "x"})
	c, _ := consumerContainer(d, "app")
	originals, err := consumerOriginals(d, "k", c, []string{"QUEUE", "EVENTS"})
	if err != nil {
		t.Fatal(err)
	}
	rec := splitRecord{Registry: "k", Container: "app", Vars: originals}
	want := map[string]string{"QUEUE": "mirrord-f-1-orders", "EVENTS": "mirrord-f-2-events"}
	p, err := splitPatch(rec, want)
	if err != nil {
		t.Fatal(err)
	}
	split := apply(t, d, p)
	if env := envOf(split, "app"); env["QUEUE"] != want["QUEUE"] || env["EVENTS"] != want["EVENTS"] || env["OTHER"] != "x" || len(env) != 3 {
		t.Errorf("split app env %v", env)
	}
	if env := envOf(split, "sidecar"); env["QUEUE"] != "sidecar-q" {
		t.Errorf("the sidecar changed: %v", env)
	}
	sc, _ := consumerContainer(split, "app")
	if !consumerHolds(sc, want) || consumerHolds(c, want) {
		t.Error("consumerHolds does not tell the split consumer from the original")
	}
	got, err := consumerOriginals(split, "k", sc, []string{"QUEUE", "EVENTS"})
	if err != nil || got["QUEUE"].Value != "orders" || got["EVENTS"].Present {
		t.Errorf("the record after the split: %v, %v", got, err)
	}

	r, err := restorePatch(rec)
	if err != nil {
		t.Fatal(err)
	}
	restored := apply(t, split, r)
	if env := envOf(restored, "app"); env["QUEUE"] != "orders" || env["OTHER"] != "x" || len(env) != 2 {
		t.Errorf("restored app env %v", env)
	}
	// The record stays, marked restored, until the split's queues are drained.
	after, err := parseSplitRecord(restored.Annotations[AnnotationQueueSplit])
	if err != nil || !after.Restored || after.Vars["QUEUE"].Value != "orders" {
		t.Errorf("the record after the restore: %+v, %v", after, err)
	}
	fp, err := forgetPatch(after)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := apply(t, restored, fp).Annotations[AnnotationQueueSplit]; ok {
		t.Error("the record outlived forgetPatch")
	}
}

func TestRolledOut(t *testing.T) {
	for _, c := range []struct {
		name string
		st   appsv1.DeploymentStatus
		want bool
	}{
		{"not observed", appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2}, false},
		{"updating", appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 1, AvailableReplicas: 2}, false},
		{"old pods left", appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 2, AvailableReplicas: 2}, false},
		{"new pods not available", appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 1}, false},
		{"done", appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2}, true},
	} {
		d := consumer()
		d.Status = c.st
		if got, why := rolledOut(d); got != c.want || (!got && why == "") {
			t.Errorf("%s: %v (%s), want %v", c.name, got, why, c.want)
		}
	}
}

func TestSplitSessionsOf(t *testing.T) {
	now := time.Now()
	child := func(name string, age time.Duration, kind mirrordv1alpha1.TargetKind, target string, queues ...string) *mirrordv1alpha1.MirrordClusterSession {
		ch := &mirrordv1alpha1.MirrordClusterSession{ObjectMeta: metav1.ObjectMeta{Namespace: "mirrord-system", Name: name, CreationTimestamp: metav1.NewTime(now.Add(-age))},
			Spec: mirrordv1alpha1.MirrordClusterSessionSpec{Parent: mirrordv1alpha1.ParentReference{Namespace: "shop", Name: "p-" + name, UID: "u-" + name},
				Target: mirrordv1alpha1.Target{Kind: kind, Name: target, Namespace: "shop"}}}
		for _, q := range queues {
			ch.Spec.Features.SplitQueues = append(ch.Spec.Features.SplitQueues, mirrordv1alpha1.QueueSplitRequest{QueueID: q, MessageFilter: map[string]string{"dev": name}})
		}
		return ch
	}
	deleting := child("deleting", time.Minute, mirrordv1alpha1.TargetKindDeployment, "worker", "orders")
	deleting.DeletionTimestamp = &metav1.Time{Time: now}
	got := splitSessionsOf([]*mirrordv1alpha1.MirrordClusterSession{
		child("young", time.Second, mirrordv1alpha1.TargetKindDeployment, "worker", "orders"),
		child("old", time.Hour, mirrordv1alpha1.TargetKindDeployment, "worker", "orders", "events"),
		child("nosplit", time.Hour, mirrordv1alpha1.TargetKindDeployment, "worker"),
		child("other", time.Hour, mirrordv1alpha1.TargetKindDeployment, "api", "orders"),
		child("pod", time.Hour, mirrordv1alpha1.TargetKindPod, "worker", "orders"),
		deleting,
	}, "shop", "worker")
	if len(got) != 2 || got[0].child != "mirrord-system/old" || got[1].child != "mirrord-system/young" {
		t.Fatalf("sessions %+v, want old then young", got)
	}
	if got[0].parent != "shop/p-old" || got[0].parentUID != "u-old" || len(got[0].filters) != 2 || got[0].filters["events"]["dev"] != "old" {
		t.Errorf("old: %+v", got[0])
	}
}
