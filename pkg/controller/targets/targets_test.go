package targets

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func meta(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }

func pod(name string, phase corev1.PodPhase, ready bool, containers ...string) corev1.Pod {
	p := corev1.Pod{ObjectMeta: meta(name), Status: corev1.PodStatus{Phase: phase}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c})
	}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
	return p
}

func TestPaths(t *testing.T) {
	deleting := meta("going")
	deleting.DeletionTimestamp = &metav1.Time{}
	o := Objects{
		Deployments:  []appsv1.Deployment{{ObjectMeta: meta("web")}, {ObjectMeta: meta("api")}, {ObjectMeta: deleting}},
		Rollouts:     []string{"canary"},
		StatefulSets: []appsv1.StatefulSet{{ObjectMeta: meta("db")}},
		CronJobs:     []batchv1.CronJob{{ObjectMeta: meta("nightly")}},
		Jobs:         []batchv1.Job{{ObjectMeta: meta("nightly-1")}},
		Services:     []corev1.Service{{ObjectMeta: meta("api")}},
		ReplicaSets: []appsv1.ReplicaSet{
			{ObjectMeta: meta("api-new"), Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2)}},
			{ObjectMeta: meta("api-old"), Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0)}},
		},
		DaemonSets: []appsv1.DaemonSet{{ObjectMeta: meta("logs")}},
		Pods: []corev1.Pod{
			pod("web-2", corev1.PodRunning, true, "web", "istio-proxy"),
			pod("api-1", corev1.PodRunning, true, "api", "cache"),
			pod("starting", corev1.PodRunning, false, "app"),
			pod("pending", corev1.PodPending, false, "app"),
		},
	}
	for name, tc := range map[string]struct {
		kinds []mirrordv1alpha1.TargetKind
		want  []string
	}{
		"every kind, in mirrord's order": {kinds: Order, want: []string{
			"deployment/api", "deployment/web", "rollout/canary", "statefulset/db", "cronjob/nightly", "job/nightly-1",
			"service/api", "replicaset/api-new", "daemonset/logs",
			"pod/api-1/container/api", "pod/api-1/container/cache", "pod/web-2",
		}},
		"pods only": {kinds: []mirrordv1alpha1.TargetKind{mirrordv1alpha1.TargetKindPod}, want: []string{
			"pod/api-1/container/api", "pod/api-1/container/cache", "pod/web-2",
		}},
		"deployments only": {kinds: []mirrordv1alpha1.TargetKind{mirrordv1alpha1.TargetKindDeployment}, want: []string{"deployment/api", "deployment/web"}},
	} {
		got, truncated := Paths(o, tc.kinds)
		if !slices.Equal(got, tc.want) || truncated {
			t.Errorf("%s: %q (truncated %v), want %q", name, got, truncated, tc.want)
		}
	}
}

func TestPathsTruncated(t *testing.T) {
	var o Objects
	for i := range mirrordv1alpha1.MaxTargetsPerQuery + 5 {
		o.Deployments = append(o.Deployments, appsv1.Deployment{ObjectMeta: meta("d" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)))})
	}
	got, truncated := Paths(o, Order)
	if len(got) != mirrordv1alpha1.MaxTargetsPerQuery || !truncated {
		t.Errorf("%d paths (truncated %v), want %d and truncated", len(got), truncated, mirrordv1alpha1.MaxTargetsPerQuery)
	}
}

func TestWanted(t *testing.T) {
	got, err := Wanted([]mirrordv1alpha1.TargetKind{mirrordv1alpha1.TargetKindPod, mirrordv1alpha1.TargetKindDeployment})
	if err != nil || !slices.Equal(got, []mirrordv1alpha1.TargetKind{mirrordv1alpha1.TargetKindDeployment, mirrordv1alpha1.TargetKindPod}) {
		t.Errorf("pod, deployment: %v %v, want them in mirrord's order", got, err)
	}
	if got, err := Wanted(nil); err != nil || !slices.Equal(got, Order) {
		t.Errorf("none: %v %v, want every kind", got, err)
	}
	if _, err := Wanted([]mirrordv1alpha1.TargetKind{mirrordv1alpha1.TargetKindLabels}); err == nil {
		t.Error("Labels: no error, want one (labels are not objects to list)")
	}
}
