package install

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
)

func obj(kind, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetKind(kind)
	u.SetName(name)
	return u
}

func kinds(phase []*unstructured.Unstructured) string {
	var k []string
	for _, o := range phase {
		k = append(k, o.GetKind())
	}
	return strings.Join(k, ",")
}

func TestPhases(t *testing.T) {
	objs := []*unstructured.Unstructured{obj("Deployment", "c"), obj("CustomResourceDefinition", "a"), obj("Namespace", "n"), obj("ClusterRole", "r")}
	p := applyPhases(objs)
	if len(p) != 2 || kinds(p[0]) != "CustomResourceDefinition,Namespace" || kinds(p[1]) != "Deployment,ClusterRole" {
		t.Errorf("apply phases: %q, %q", kinds(p[0]), kinds(p[1]))
	}
	d := deletionPhases(objs, false)
	if len(d) != 3 || kinds(d[0]) != "Deployment,ClusterRole" || kinds(d[1]) != "Namespace" || kinds(d[2]) != "CustomResourceDefinition" {
		t.Errorf("deletion phases: %v", d)
	}
	if d := deletionPhases(objs, true); len(d[2]) != 0 {
		t.Errorf("--keep-crds deletes %q", kinds(d[2]))
	}
}

func TestRolloutStatus(t *testing.T) {
	dep := func(gen, observed int64, st appsv1.DeploymentStatus) *appsv1.Deployment {
		st.ObservedGeneration = observed
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: gen}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1)}, Status: st}
	}
	for name, tc := range map[string]struct {
		d       *appsv1.Deployment
		done    bool
		want    string
		wantErr string
	}{
		"not observed":      {d: dep(2, 1, appsv1.DeploymentStatus{}), want: "to be observed"},
		"nothing updated":   {d: dep(1, 1, appsv1.DeploymentStatus{}), want: "0 of 1 new replicas updated"},
		"old pod left":      {d: dep(1, 1, appsv1.DeploymentStatus{Replicas: 2, UpdatedReplicas: 1}), want: "1 old replicas pending termination"},
		"not yet ready":     {d: dep(1, 1, appsv1.DeploymentStatus{Replicas: 1, UpdatedReplicas: 1}), want: "0 of 1 updated replicas available"},
		"ready":             {d: dep(1, 1, appsv1.DeploymentStatus{Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1}), done: true, want: "ready"},
		"deadline exceeded": {d: dep(1, 1, appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Reason: "ProgressDeadlineExceeded", Message: "ReplicaSet x has timed out"}}}), wantErr: "timed out"},
	} {
		t.Run(name, func(t *testing.T) {
			done, msg, err := rolloutStatus(tc.d)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || done != tc.done || !strings.Contains(msg, tc.want) {
				t.Errorf("= %v, %q, %v; want %v, %q", done, msg, err, tc.done, tc.want)
			}
		})
	}
}

func TestPodProblems(t *testing.T) {
	pod := func(st corev1.PodStatus) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "c-1"}, Status: st}
	}
	waiting := func(reason, msg string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: "controller", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
	}
	got := podProblems([]corev1.Pod{
		pod(corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{waiting("ErrImagePull", "ghcr.io/x:v9: not found")}}),
		pod(corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{waiting("ContainerCreating", "")}}),
		pod(corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: "0/3 nodes are available"}}}),
		pod(corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "controller", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}}}),
	})
	want := []string{"c-1: controller ErrImagePull: ghcr.io/x:v9: not found", "c-1: not scheduled: 0/3 nodes are available", "c-1: controller CrashLoopBackOff (last exit 1: Error)"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("podProblems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestUninstallBlocked(t *testing.T) {
	if err := uninstallBlocked(nil, false); err != nil {
		t.Errorf("no sessions: %v", err)
	}
	many := []string{"a", "b", "c", "d", "e", "f", "g"}
	if err := uninstallBlocked(many, true); err != nil {
		t.Errorf("--force: %v", err)
	}
	err := uninstallBlocked(many, false)
	if err == nil || !strings.Contains(err.Error(), "7 sessions are running (a, b, c, d, e, and 2 more)") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("refusal: %v", err)
	}
}

func TestRunningSessions(t *testing.T) {
	sess := unstructured.Unstructured{}
	sess.SetNamespace("shop")
	sess.SetName("s1")
	sess.SetUID("u1")
	child := func(name, parentUID, cluster string) unstructured.Unstructured {
		c := unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"parent": map[string]any{"uid": parentUID, "cluster": cluster}}}}
		c.SetNamespace("mirrord-system")
		c.SetName(name)
		return c
	}
	got := runningSessions([]unstructured.Unstructured{sess}, []unstructured.Unstructured{child("own", "u1", "local"), child("remote", "u9", "hub")})
	want := "mirrordsession shop/s1|mirrordclustersession mirrord-system/remote (of Primary hub)"
	if strings.Join(got, "|") != want {
		t.Errorf("runningSessions = %q, want %q", strings.Join(got, "|"), want)
	}
}
