// Package targets lists what sessions can target in one namespace of one cluster: a member's
// answer to the Primary for `kubectl mirrord ls`. Paths are what a session's target takes
// (deployment/api, pod/api-1/container/app), in mirrord's order.
package targets

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

// Order is the kinds `ls` lists, in mirrord's order (deployments first, pods last); Labels
// and Targetless are not objects to list.
var Order = []mirrordv1alpha1.TargetKind{
	mirrordv1alpha1.TargetKindDeployment, mirrordv1alpha1.TargetKindRollout, mirrordv1alpha1.TargetKindStatefulSet,
	mirrordv1alpha1.TargetKindCronJob, mirrordv1alpha1.TargetKindJob, mirrordv1alpha1.TargetKindService,
	mirrordv1alpha1.TargetKindReplicaSet, mirrordv1alpha1.TargetKindDaemonSet, mirrordv1alpha1.TargetKindPod,
}

// Rank is k's place in Order (len(Order) for a kind not listed).
func Rank(k mirrordv1alpha1.TargetKind) int {
	if i := slices.Index(Order, k); i >= 0 {
		return i
	}
	return len(Order)
}

// Wanted is the kinds a query asks for, in Order; an error names a kind `ls` cannot list.
func Wanted(kinds []mirrordv1alpha1.TargetKind) ([]mirrordv1alpha1.TargetKind, error) {
	if len(kinds) == 0 {
		return slices.Clone(Order), nil
	}
	var out []mirrordv1alpha1.TargetKind
	for _, k := range Order {
		if slices.Contains(kinds, k) {
			out = append(out, k)
		}
	}
	for _, k := range kinds {
		if !slices.Contains(Order, k) {
			return nil, fmt.Errorf("%s targets are not objects to list: ask for %v", k, Order)
		}
	}
	return out, nil
}

// Path is the path of a kind's object as a session names it; container only for a pod of
// several containers.
func Path(kind mirrordv1alpha1.TargetKind, name, container string) string {
	return target.String(mirrordv1alpha1.Target{Kind: kind, Name: name, Container: container})
}

// Objects are one namespace's objects of each kind, as listed.
type Objects struct {
	Deployments  []appsv1.Deployment
	Rollouts     []string // names: the CRD is not ours to type
	StatefulSets []appsv1.StatefulSet
	CronJobs     []batchv1.CronJob
	Jobs         []batchv1.Job
	Services     []corev1.Service
	ReplicaSets  []appsv1.ReplicaSet
	DaemonSets   []appsv1.DaemonSet
	Pods         []corev1.Pod
}

// Paths is what o offers sessions, of the kinds asked, in Order and by name within a kind:
// objects not being deleted; ReplicaSets scaled above zero (a Deployment's old ones are
// not); pods running and ready, one path per container of a pod with several (mesh proxies
// left out), as mirrord lists them. At most mirrordv1alpha1.MaxTargetsPerQuery paths.
func Paths(o Objects, kinds []mirrordv1alpha1.TargetKind) (paths []string, truncated bool) {
	add := func(kind mirrordv1alpha1.TargetKind, names []string) {
		slices.Sort(names)
		for _, n := range names {
			paths = append(paths, Path(kind, n, ""))
		}
	}
	for _, k := range kinds {
		switch k {
		case mirrordv1alpha1.TargetKindDeployment:
			add(k, live(o.Deployments, func(x appsv1.Deployment) metav1.ObjectMeta { return x.ObjectMeta }, nil))
		case mirrordv1alpha1.TargetKindRollout:
			add(k, slices.Clone(o.Rollouts))
		case mirrordv1alpha1.TargetKindStatefulSet:
			add(k, live(o.StatefulSets, func(x appsv1.StatefulSet) metav1.ObjectMeta { return x.ObjectMeta }, nil))
		case mirrordv1alpha1.TargetKindCronJob:
			add(k, live(o.CronJobs, func(x batchv1.CronJob) metav1.ObjectMeta { return x.ObjectMeta }, nil))
		case mirrordv1alpha1.TargetKindJob:
			add(k, live(o.Jobs, func(x batchv1.Job) metav1.ObjectMeta { return x.ObjectMeta }, nil))
		case mirrordv1alpha1.TargetKindService:
			add(k, live(o.Services, func(x corev1.Service) metav1.ObjectMeta { return x.ObjectMeta }, nil))
		case mirrordv1alpha1.TargetKindReplicaSet:
			add(k, live(o.ReplicaSets, func(x appsv1.ReplicaSet) metav1.ObjectMeta { return x.ObjectMeta },
				func(x appsv1.ReplicaSet) bool { return x.Spec.Replicas == nil || *x.Spec.Replicas > 0 }))
		case mirrordv1alpha1.TargetKindDaemonSet:
			add(k, live(o.DaemonSets, func(x appsv1.DaemonSet) metav1.ObjectMeta { return x.ObjectMeta }, nil))
		case mirrordv1alpha1.TargetKindPod:
			paths = append(paths, podPaths(o.Pods)...)
		}
	}
	if len(paths) > mirrordv1alpha1.MaxTargetsPerQuery {
		return paths[:mirrordv1alpha1.MaxTargetsPerQuery], true
	}
	return paths, false
}

// live is the names of objs not being deleted that keep accepts (every one when nil).
func live[T any](objs []T, meta func(T) metav1.ObjectMeta, keep func(T) bool) []string {
	var names []string
	for _, o := range objs {
		m := meta(o)
		if m.DeletionTimestamp == nil && (keep == nil || keep(o)) {
			names = append(names, m.Name)
		}
	}
	return names
}

func podPaths(pods []corev1.Pod) []string {
	var paths []string
	pods = slices.Clone(pods)
	slices.SortFunc(pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || !ready(p) {
			continue
		}
		var containers []string
		for _, c := range p.Spec.Containers {
			if !target.IsMeshSidecar(c.Name) {
				containers = append(containers, c.Name)
			}
		}
		if len(containers) == 1 {
			paths = append(paths, Path(mirrordv1alpha1.TargetKindPod, p.Name, ""))
			continue
		}
		for _, c := range containers {
			paths = append(paths, Path(mirrordv1alpha1.TargetKindPod, p.Name, c))
		}
	}
	return paths
}

func ready(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// List answers q from this cluster's API server: one bounded LIST per kind asked (a kind with
// more objects than an answer holds marks it truncated). A namespace this cluster's admin
// excludes is not read at all.
func List(ctx context.Context, kube kubernetes.Interface, excluded []string, q protocol.TargetsQuery) (protocol.TargetsAnswer, error) {
	if slices.Contains(excluded, q.Namespace) {
		return protocol.TargetsAnswer{Problem: fmt.Sprintf("this cluster's admin excludes namespace %s from sessions", q.Namespace)}, nil
	}
	kinds, err := Wanted(q.Kinds)
	if err != nil {
		return protocol.TargetsAnswer{}, err
	}
	ns := q.Namespace
	opts := metav1.ListOptions{Limit: mirrordv1alpha1.MaxTargetsPerQuery}
	var o Objects
	more := false
	note := func(m metav1.ListMeta) { more = more || m.Continue != "" }
	for _, k := range kinds {
		switch k {
		case mirrordv1alpha1.TargetKindDeployment:
			l, err := kube.AppsV1().Deployments(ns).List(ctx, opts)
			if err != nil {
				return protocol.TargetsAnswer{}, fmt.Errorf("listing deployments: %w", err)
			}
			o.Deployments = l.Items
			note(l.ListMeta)
		case mirrordv1alpha1.TargetKindRollout:
			if o.Rollouts, err = rollouts(ctx, kube, ns); err != nil {
				return protocol.TargetsAnswer{}, err
			}
		case mirrordv1alpha1.TargetKindStatefulSet:
			l, err := kube.AppsV1().StatefulSets(ns).List(ctx, opts)
			if err != nil {
				return protocol.TargetsAnswer{}, fmt.Errorf("listing statefulsets: %w", err)
			}
			o.StatefulSets = l.Items
			note(l.ListMeta)
		case mirrordv1alpha1.TargetKindCronJob:
			l, err := kube.BatchV1().CronJobs(ns).List(ctx, opts)
			if err != nil {
				return protocol.TargetsAnswer{}, fmt.Errorf("listing cronjobs: %w", err)
			}
			o.CronJobs = l.Items
			note(l.ListMeta)
		case mirrordv1alpha1.TargetKindJob:
			l, err := kube.BatchV1().Jobs(ns).List(ctx, opts)
			if err != nil {
				return protocol.TargetsAnswer{}, fmt.Errorf("listing jobs: %w", err)
			}
			o.Jobs = l.Items
			note(l.ListMeta)
		case mirrordv1alpha1.TargetKindService:
			l, err := kube.CoreV1().Services(ns).List(ctx, opts)
			if err != nil {
				return protocol.TargetsAnswer{}, fmt.Errorf("listing services: %w", err)
			}
			o.Services = l.Items
			note(l.ListMeta)
		case mirrordv1alpha1.TargetKindReplicaSet:
			l, err := kube.AppsV1().ReplicaSets(ns).List(ctx, opts)
			if err != nil {
				return protocol.TargetsAnswer{}, fmt.Errorf("listing replicasets: %w", err)
			}
			o.ReplicaSets = l.Items
			note(l.ListMeta)
		case mirrordv1alpha1.TargetKindDaemonSet:
			l, err := kube.AppsV1().DaemonSets(ns).List(ctx, opts)
			if err != nil {
				return protocol.TargetsAnswer{}, fmt.Errorf("listing daemonsets: %w", err)
			}
			o.DaemonSets = l.Items
			note(l.ListMeta)
		case mirrordv1alpha1.TargetKindPod:
			popts := opts
			popts.FieldSelector = "status.phase=Running"
			l, err := kube.CoreV1().Pods(ns).List(ctx, popts)
			if err != nil {
				return protocol.TargetsAnswer{}, fmt.Errorf("listing pods: %w", err)
			}
			o.Pods = l.Items
			note(l.ListMeta)
		}
	}
	paths, truncated := Paths(o, kinds)
	return protocol.TargetsAnswer{Targets: paths, Truncated: truncated || more}, nil
}

// rollouts is the names of the namespace's Argo Rollouts; none where their CRD is not
// installed.
func rollouts(ctx context.Context, kube kubernetes.Interface, ns string) ([]string, error) {
	raw, err := kube.CoreV1().RESTClient().Get().AbsPath("/apis/argoproj.io/v1alpha1/namespaces", ns, "rollouts").
		Param("limit", fmt.Sprint(mirrordv1alpha1.MaxTargetsPerQuery)).DoRaw(ctx)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing rollouts: %w", err)
	}
	var l metav1.PartialObjectMetadataList
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("reading the rollouts: %w", err)
	}
	var names []string
	for _, r := range l.Items {
		if r.DeletionTimestamp == nil {
			names = append(names, r.Name)
		}
	}
	return names, nil
}
