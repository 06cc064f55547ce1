package member

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	appslisters "k8s.io/client-go/listers/apps/v1"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// cachesOf is listers over caches holding objs, as the informers would.
func cachesOf(t *testing.T, objs ...any) listers {
	t.Helper()
	idx := func() cache.Indexer {
		return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	}
	pods, deps, jobs, cjs, svcs := idx(), idx(), idx(), idx(), idx()
	for _, o := range objs {
		var err error
		switch o.(type) {
		case *corev1.Pod:
			err = pods.Add(o)
		case *appsv1.Deployment:
			err = deps.Add(o)
		case *batchv1.Job:
			err = jobs.Add(o)
		case *batchv1.CronJob:
			err = cjs.Add(o)
		case *corev1.Service:
			err = svcs.Add(o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return listers{pods: corelisters.NewPodLister(pods), deployments: appslisters.NewDeploymentLister(deps),
		batchJobs: batchlisters.NewJobLister(jobs), cronJobs: batchlisters.NewCronJobLister(cjs), services: corelisters.NewServiceLister(svcs)}
}

func runningPodOf(name string, labels map[string]string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: k8stypes.UID("uid-" + name), Labels: labels},
		Spec: corev1.PodSpec{NodeName: "n1"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c})
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: c, ContainerID: "containerd://" + name + "-" + c,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})
	}
	return p
}

func TestResolveTargetKinds(t *testing.T) {
	at := func(sec int) metav1.Time { return metav1.NewTime(time.Unix(1700000000+int64(sec), 0)) }
	cron := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "shop", UID: "cj"},
		Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "run"}}}}}}}}
	jobOf := func(name string, created metav1.Time, owner k8stypes.UID) *batchv1.Job {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: k8stypes.UID(name), CreationTimestamp: created},
			Spec: batchv1.JobSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"job": name}},
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "run"}}}}}}
		if owner != "" {
			j.OwnerReferences = []metav1.OwnerReference{{Kind: "CronJob", Name: "nightly", UID: owner, Controller: ptr.To(true)}}
		}
		return j
	}
	objs := []any{
		cron, jobOf("nightly-1", at(0), "cj"), jobOf("nightly-2", at(60), "cj"), jobOf("other", at(120), "someone-else"), jobOf("migrate", at(0), ""),
		runningPodOf("nightly-1-a", map[string]string{"job": "nightly-1"}, "run"),
		runningPodOf("nightly-2-a", map[string]string{"job": "nightly-2"}, "run"),
		runningPodOf("migrate-a", map[string]string{"job": "migrate"}, "run"),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "api"}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "external", Namespace: "shop"}}, // no selector: its endpoints are someone else's
		runningPodOf("api-b", map[string]string{"app": "api", "tier": "web"}, "istio-proxy", "app"),
		runningPodOf("api-a", map[string]string{"app": "api"}, "istio-proxy", "app"),
	}
	l := cachesOf(t, objs...)
	for name, tc := range map[string]struct {
		target     mirrordv1alpha1.Target
		wantReason string
		wantPods   []string
		container  string
	}{
		"a job's pods":                               {mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindJob, Name: "migrate"}, mirrordv1alpha1.ReasonResolved, []string{"migrate-a"}, "run"},
		"a cron job: the pods of its newest Job":     {mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindCronJob, Name: "nightly"}, mirrordv1alpha1.ReasonResolved, []string{"nightly-2-a"}, "run"},
		"a service: the pods it selects":             {mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindService, Name: "api"}, mirrordv1alpha1.ReasonResolved, []string{"api-a", "api-b"}, "app"},
		"a service with no selector selects nothing": {mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindService, Name: "external"}, mirrordv1alpha1.ReasonNoPods, nil, ""},
		"labels: every pod with all of them":         {mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindLabels, Labels: map[string]string{"app": "api", "tier": "web"}}, mirrordv1alpha1.ReasonResolved, []string{"api-b"}, "app"},
		"labels no pod has: not here":                {mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindLabels, Labels: map[string]string{"app": "web"}}, mirrordv1alpha1.ReasonTargetNotFound, nil, ""},
		"a missing service: not here":                {mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindService, Name: "gone"}, mirrordv1alpha1.ReasonTargetNotFound, nil, ""},
		"a rollout where none can be read":           {mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindRollout, Name: "api"}, mirrordv1alpha1.ReasonTargetNotFound, nil, ""},
	} {
		t.Run(name, func(t *testing.T) {
			tc.target.Namespace = "shop"
			r, err := l.resolveTarget(tc.target)
			if err != nil {
				t.Fatal(err)
			}
			var pods []string
			for _, p := range r.Pods {
				pods = append(pods, p.Pod.Name)
				if p.Container != tc.container {
					t.Errorf("pod %s: container %q, want %q", p.Pod.Name, p.Container, tc.container)
				}
			}
			if r.Reason != tc.wantReason || len(pods) != len(tc.wantPods) {
				t.Fatalf("reason %s (%s), pods %v; want %s, %v", r.Reason, r.Message, pods, tc.wantReason, tc.wantPods)
			}
			for i := range pods {
				if pods[i] != tc.wantPods[i] {
					t.Errorf("pods %v, want %v", pods, tc.wantPods)
				}
			}
		})
	}
}

func TestRolloutObject(t *testing.T) {
	inline := `{"metadata": {"name": "api", "labels": {"team": "a"}}, "spec": {"selector": {"matchLabels": {"app": "api"}},
		"template": {"spec": {"containers": [{"name": "app"}]}}}}`
	obj, err := rolloutObject([]byte(inline), nil)
	if err != nil || obj.template.Containers[0].Name != "app" || obj.selector.MatchLabels["app"] != "api" || obj.meta.Labels["team"] != "a" {
		t.Errorf("inline template: %+v, %v", obj, err)
	}
	ref := `{"metadata": {"name": "api"}, "spec": {"selector": {"matchLabels": {"app": "api"}}, "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api-base"}}}`
	obj, err = rolloutObject([]byte(ref), func(name string) (*corev1.PodSpec, error) {
		if name != "api-base" {
			t.Errorf("looked up deployment %q", name)
		}
		return &corev1.PodSpec{Containers: []corev1.Container{{Name: "from-deployment"}}}, nil
	})
	if err != nil || obj.template.Containers[0].Name != "from-deployment" {
		t.Errorf("workloadRef: %+v, %v", obj, err)
	}
	if _, err := rolloutObject([]byte(`{"metadata": {"name": "api"}, "spec": {"workloadRef": {"kind": "ReplicaSet", "name": "x"}}}`), nil); err == nil {
		t.Error("a workloadRef to a ReplicaSet was read")
	}
}
