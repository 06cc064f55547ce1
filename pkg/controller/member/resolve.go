package member

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

// resolution is what a target is in this cluster right now.
type resolution struct {
	// Found is false when the target object does not exist here (not an error: a workload
	// may run in only some clusters).
	Found bool
	// Labels of the target object, for policy selectors.
	Labels map[string]string
	// Pods are the target's pods whose container runs: each gets an agent.
	Pods []targetPod
	// Waiting counts the target's pods that do not run yet.
	Waiting int
	// Reason and Message explain the result; Terminal means the session cannot work here.
	Reason, Message string
	Terminal        bool
	// refused: the target was not looked up because this cluster refuses it (authz.Member).
	refused bool
	// targetless: the session has no target; its own agent serves it (targetlessResolution).
	targetless bool
}

// listers are the caches target resolution reads.
type listers struct {
	pods         corelisters.PodLister
	deployments  appslisters.DeploymentLister
	statefulSets appslisters.StatefulSetLister
	replicaSets  appslisters.ReplicaSetLister
	daemonSets   appslisters.DaemonSetLister
	batchJobs    batchlisters.JobLister
	cronJobs     batchlisters.CronJobLister
	services     corelisters.ServiceLister
	// rollout reads an Argo Rollout from the API server (no cache: the CRD may not be
	// installed, and few sessions target one).
	rollout func(namespace, name string) (targetObject, error)
}

// targetObject is the target's own object, reduced to what resolution reads.
type targetObject struct {
	meta metav1.ObjectMeta
	// template is the pods' spec; nil when the target has none of its own (a Service, a
	// Labels target): then the first pod's stands in.
	template *corev1.PodSpec
	selector *metav1.LabelSelector // nil for a pod
	pod      *corev1.Pod           // the target itself, for a pod
}

// lookup reads the target's object from the caches; NotFound when it does not exist here.
func (l listers) lookup(t mirrordv1alpha1.Target) (targetObject, error) {
	switch t.Kind {
	case mirrordv1alpha1.TargetKindPod:
		p, err := l.pods.Pods(t.Namespace).Get(t.Name)
		if err != nil {
			return targetObject{}, err
		}
		return targetObject{meta: p.ObjectMeta, template: &p.Spec, pod: p}, nil
	case mirrordv1alpha1.TargetKindDeployment:
		o, err := l.deployments.Deployments(t.Namespace).Get(t.Name)
		if err != nil {
			return targetObject{}, err
		}
		return targetObject{meta: o.ObjectMeta, template: &o.Spec.Template.Spec, selector: o.Spec.Selector}, nil
	case mirrordv1alpha1.TargetKindStatefulSet:
		o, err := l.statefulSets.StatefulSets(t.Namespace).Get(t.Name)
		if err != nil {
			return targetObject{}, err
		}
		return targetObject{meta: o.ObjectMeta, template: &o.Spec.Template.Spec, selector: o.Spec.Selector}, nil
	case mirrordv1alpha1.TargetKindReplicaSet:
		o, err := l.replicaSets.ReplicaSets(t.Namespace).Get(t.Name)
		if err != nil {
			return targetObject{}, err
		}
		return targetObject{meta: o.ObjectMeta, template: &o.Spec.Template.Spec, selector: o.Spec.Selector}, nil
	case mirrordv1alpha1.TargetKindDaemonSet:
		o, err := l.daemonSets.DaemonSets(t.Namespace).Get(t.Name)
		if err != nil {
			return targetObject{}, err
		}
		return targetObject{meta: o.ObjectMeta, template: &o.Spec.Template.Spec, selector: o.Spec.Selector}, nil
	case mirrordv1alpha1.TargetKindJob:
		o, err := l.batchJobs.Jobs(t.Namespace).Get(t.Name)
		if err != nil {
			return targetObject{}, err
		}
		return targetObject{meta: o.ObjectMeta, template: &o.Spec.Template.Spec, selector: o.Spec.Selector}, nil
	case mirrordv1alpha1.TargetKindCronJob:
		o, err := l.cronJobs.CronJobs(t.Namespace).Get(t.Name)
		if err != nil {
			return targetObject{}, err
		}
		jobs, err := l.batchJobs.Jobs(t.Namespace).List(labels.Everything())
		if err != nil {
			return targetObject{}, err
		}
		obj := targetObject{meta: o.ObjectMeta, template: &o.Spec.JobTemplate.Spec.Template.Spec}
		if j := newestJobOf(o.UID, jobs); j != nil {
			obj.selector = j.Spec.Selector
		}
		return obj, nil
	case mirrordv1alpha1.TargetKindService:
		o, err := l.services.Services(t.Namespace).Get(t.Name)
		if err != nil {
			return targetObject{}, err
		}
		return targetObject{meta: o.ObjectMeta, selector: &metav1.LabelSelector{MatchLabels: o.Spec.Selector}}, nil
	case mirrordv1alpha1.TargetKindLabels:
		// Exists where a pod has the labels: a cluster with none has nothing of it.
		sel := labels.SelectorFromSet(t.Labels)
		pods, err := l.pods.Pods(t.Namespace).List(sel)
		if err != nil {
			return targetObject{}, err
		}
		if len(t.Labels) == 0 || len(pods) == 0 {
			return targetObject{}, apierrors.NewNotFound(corev1.Resource("pods"), sel.String())
		}
		return targetObject{selector: &metav1.LabelSelector{MatchLabels: t.Labels}}, nil
	case mirrordv1alpha1.TargetKindRollout:
		if l.rollout == nil {
			return targetObject{}, errUnknownKind
		}
		return l.rollout(t.Namespace, t.Name)
	}
	return targetObject{}, errUnknownKind
}

// newestJobOf is the newest of jobs that cron job uid made (its controller).
func newestJobOf(uid types.UID, jobs []*batchv1.Job) *batchv1.Job {
	var newest *batchv1.Job
	for _, j := range jobs {
		ref := metav1.GetControllerOf(j)
		if ref == nil || ref.UID != uid {
			continue
		}
		if newest == nil || j.CreationTimestamp.After(newest.CreationTimestamp.Time) ||
			(j.CreationTimestamp.Equal(&newest.CreationTimestamp) && j.Name > newest.Name) {
			newest = j
		}
	}
	return newest
}

var errUnknownKind = errors.New("unknown target kind")

// resolveTarget finds t's pods and the container to intercept in each.
func (l listers) resolveTarget(t mirrordv1alpha1.Target) (resolution, error) {
	name := target.String(mirrordv1alpha1.Target{Kind: t.Kind, Name: t.Name, Labels: t.Labels})
	obj, err := l.lookup(t)
	if errors.Is(err, errUnknownKind) {
		return resolution{Reason: mirrordv1alpha1.ReasonTargetNotFound, Terminal: true, Message: fmt.Sprintf("unknown target kind %q", t.Kind)}, nil
	}
	if apierrors.IsNotFound(err) {
		return resolution{Reason: mirrordv1alpha1.ReasonTargetNotFound, Message: fmt.Sprintf("%s not found in namespace %s", name, t.Namespace)}, nil
	}
	if err != nil {
		return resolution{}, err
	}
	meta, template, selector := obj.meta, obj.template, obj.selector
	r := resolution{Found: true, Labels: meta.Labels}
	if t.Kind == mirrordv1alpha1.TargetKindLabels {
		r.Labels = t.Labels
	}
	var pods []*corev1.Pod
	if obj.pod != nil {
		pods = []*corev1.Pod{obj.pod}
	} else {
		sel := labels.Nothing() // a cron job with no Job yet, a Service with no selector
		if selector != nil {
			if sel, err = metav1.LabelSelectorAsSelector(selector); err != nil {
				return r, fmt.Errorf("%s has an invalid selector: %w", name, err)
			}
			if sel.Empty() {
				sel = labels.Nothing()
			}
		}
		if pods, err = l.pods.Pods(t.Namespace).List(sel); err != nil {
			return r, err
		}
		slices.SortFunc(pods, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	}
	if template == nil {
		if len(pods) == 0 {
			r.Reason, r.Message = mirrordv1alpha1.ReasonNoPods, fmt.Sprintf("%s selects no pods here", name)
			return r, nil
		}
		template = &pods[0].Spec // a Service's or a selector's pods: the first stands for all
	}
	if template.HostNetwork {
		r.Reason, r.Terminal = mirrordv1alpha1.ReasonHostNetwork, true
		r.Message = fmt.Sprintf("%s uses hostNetwork: its traffic is the node's, so it cannot be intercepted; target a pod on the pod network", name)
		return r, nil
	}
	container, ok := pickContainer(template, t.Container)
	if !ok {
		r.Reason, r.Terminal = mirrordv1alpha1.ReasonContainerNotFound, true
		r.Message = fmt.Sprintf("container %q not found in %s; it has: %s (use -c or .../container/NAME)", t.Container, name, strings.Join(containerNames(template), ", "))
		return r, nil
	}

	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if p.Spec.HostNetwork {
			continue // a hostNetwork pod matched by a selector is not ours to touch
		}
		id := runningContainerID(p, container)
		if id == "" || p.Spec.NodeName == "" {
			r.Waiting++
			continue
		}
		r.Pods = append(r.Pods, targetPod{Pod: p, Container: container, ContainerID: id, ProbePorts: probePorts(&p.Spec, container)})
	}
	switch {
	case len(r.Pods) == 0 && r.Waiting == 0:
		r.Reason = mirrordv1alpha1.ReasonNoPods
		r.Message = fmt.Sprintf("%s has no pods here", name)
	case len(r.Pods) == 0:
		r.Reason = mirrordv1alpha1.ReasonNoRunningPods
		r.Message = fmt.Sprintf("%s has no running pods (%d starting)", name, r.Waiting)
	default:
		r.Reason = mirrordv1alpha1.ReasonResolved
		r.Message = fmt.Sprintf("%s: %d running pod(s), container %s", name, len(r.Pods), container)
	}
	return r, nil
}

func containerNames(spec *corev1.PodSpec) []string {
	var names []string
	for _, c := range spec.Containers {
		names = append(names, c.Name)
	}
	return names
}

// pickContainer returns the named container, or the first one that is not a mesh sidecar.
func pickContainer(spec *corev1.PodSpec, name string) (string, bool) {
	for _, c := range spec.Containers {
		if name != "" && c.Name == name {
			return name, true
		}
	}
	if name != "" {
		return "", false
	}
	for _, c := range spec.Containers {
		if !target.IsMeshSidecar(c.Name) {
			return c.Name, true
		}
	}
	if len(spec.Containers) > 0 {
		return spec.Containers[0].Name, true
	}
	return "", false
}

func runningContainerID(p *corev1.Pod, container string) string {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == container && s.State.Running != nil {
			return s.ContainerID
		}
	}
	return ""
}

// probePorts lists the ports the kubelet probes: stealing them would make the kubelet restart
// the target.
func probePorts(spec *corev1.PodSpec, container string) []int32 {
	var out []int32
	for _, c := range spec.Containers {
		if c.Name != container {
			continue
		}
		for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			if p == nil {
				continue
			}
			switch {
			case p.HTTPGet != nil:
				out = appendPort(out, c, p.HTTPGet.Port.IntVal, p.HTTPGet.Port.StrVal)
			case p.TCPSocket != nil:
				out = appendPort(out, c, p.TCPSocket.Port.IntVal, p.TCPSocket.Port.StrVal)
			case p.GRPC != nil:
				out = appendPort(out, c, p.GRPC.Port, "")
			}
		}
	}
	return out
}

func appendPort(out []int32, c corev1.Container, num int32, name string) []int32 {
	if name != "" {
		for _, cp := range c.Ports {
			if cp.Name == name {
				num = cp.ContainerPort
			}
		}
	}
	if num == 0 {
		return out
	}
	for _, p := range out {
		if p == num {
			return out
		}
	}
	return append(out, num)
}

// argoRollout is what resolution reads of an Argo Rollout (argoproj.io/v1alpha1).
type argoRollout struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector *metav1.LabelSelector  `json:"selector"`
		Template corev1.PodTemplateSpec `json:"template"`
		// WorkloadRef names a Deployment whose template the Rollout's pods run.
		WorkloadRef *struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"workloadRef"`
	} `json:"spec"`
}

// rolloutObject reduces an Argo Rollout's JSON to a targetObject; a workloadRef's template is
// its Deployment's (deployment looks it up).
func rolloutObject(raw []byte, deployment func(name string) (*corev1.PodSpec, error)) (targetObject, error) {
	var r argoRollout
	if err := json.Unmarshal(raw, &r); err != nil {
		return targetObject{}, fmt.Errorf("reading the Argo Rollout: %w", err)
	}
	obj := targetObject{meta: r.ObjectMeta, template: &r.Spec.Template.Spec, selector: r.Spec.Selector}
	if ref := r.Spec.WorkloadRef; ref != nil {
		if ref.Kind != "Deployment" {
			return targetObject{}, fmt.Errorf("rollout %s refers to a %s: only a Deployment's template is read", r.Name, ref.Kind)
		}
		spec, err := deployment(ref.Name)
		if err != nil {
			return targetObject{}, fmt.Errorf("rollout %s refers to deployment %s: %w", r.Name, ref.Name, err)
		}
		obj.template = spec
	}
	return obj, nil
}

// rolloutGetter reads Argo Rollouts through kube's REST client; a cluster without their CRD
// has none (NotFound).
func rolloutGetter(kube kubernetes.Interface, deployments appslisters.DeploymentLister) func(namespace, name string) (targetObject, error) {
	return func(namespace, name string) (targetObject, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		raw, err := kube.CoreV1().RESTClient().Get().AbsPath("/apis/argoproj.io/v1alpha1/namespaces", namespace, "rollouts", name).DoRaw(ctx)
		if err != nil {
			if apierrors.IsNotFound(err) {
				return targetObject{}, apierrors.NewNotFound(schema.GroupResource{Group: "argoproj.io", Resource: "rollouts"}, name)
			}
			return targetObject{}, err
		}
		return rolloutObject(raw, func(d string) (*corev1.PodSpec, error) {
			o, err := deployments.Deployments(namespace).Get(d)
			if err != nil {
				return nil, err
			}
			return &o.Spec.Template.Spec, nil
		})
	}
}
