package sessionflags

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestNamesOf(t *testing.T) {
	kube := fake.NewClientset(
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "elsewhere"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "api-0", Namespace: "shop"}},
	)
	for kind, want := range map[string][]string{"deploy": {"api", "web"}, "deployments": {"api", "web"}, "pod": {"api-0"}, "sts": nil, "cronjob": nil} {
		got, err := namesOf(context.Background(), kube, "shop", kind)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", kind, d)
		}
	}
}

func TestContainersOf(t *testing.T) {
	tmpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}, {Name: "sidecar"}}}}
	kube := fake.NewClientset(
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"}, Spec: appsv1.DeploymentSpec{Template: tmpl}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "api-0", Namespace: "shop"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "only"}}}},
	)
	for _, tc := range []struct {
		kind, name string
		want       []string
	}{{"deploy", "api", []string{"app", "sidecar"}}, {"pod", "api-0", []string{"only"}}, {"svc", "x", nil}} {
		got, err := containersOf(context.Background(), kube, "shop", tc.kind, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s/%s (-want +got):\n%s", tc.kind, tc.name, d)
		}
	}
}
