package install

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
)

// FieldManager owns every field an install applies.
const FieldManager = "kubectl-mirrord-install"

// Namespace is where the controller runs (the base's namespace).
const Namespace = "mirrord-system"

// Cluster is the cluster an install or uninstall writes to.
type Cluster struct {
	Dynamic dynamic.Interface
	Mapper  meta.RESTMapper
	// Progress receives one line per step.
	Progress io.Writer
}

var (
	crdGVR        = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	deploymentGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	podGVR        = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	// sessionGVRs are the kinds whose objects are running sessions: a Primary's sessions and a
	// member's child sessions.
	sessionGVRs = []schema.GroupVersionResource{
		{Group: "kubectl-mirrord.io", Version: "v1alpha1", Resource: "mirrordsessions"},
		{Group: "kubectl-mirrord.io", Version: "v1alpha1", Resource: "mirrordclustersessions"},
	}
)

// Apply applies objs with server-side apply (an install owns the fields it sets and takes
// them from any other manager), in phases (applyPhases), waiting until the CRDs are
// established before the rest. WaitReady then waits for the controller.
func Apply(ctx context.Context, c Cluster, objs []*unstructured.Unstructured) error {
	phases := applyPhases(objs)
	for i, phase := range phases {
		for _, o := range phase {
			ri, err := c.resource(o)
			if err != nil {
				return err
			}
			if _, err := ri.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
				return fmt.Errorf("applying %s: %w", Key(o), err)
			}
		}
		fmt.Fprintf(c.Progress, "applied %d objects (%s)\n", len(phase), phaseNames[i])
		if i == 0 {
			if err := c.waitCRDs(ctx, phase); err != nil {
				return err
			}
		}
	}
	return nil
}

var phaseNames = []string{"CRDs and the namespace", "the controller, its RBAC and admission policies"}

// applyPhases puts the CRDs and Namespaces first: what the rest lives in or refers to.
func applyPhases(objs []*unstructured.Unstructured) [][]*unstructured.Unstructured {
	first, rest := []*unstructured.Unstructured{}, []*unstructured.Unstructured{}
	for _, o := range objs {
		switch o.GetKind() {
		case "CustomResourceDefinition", "Namespace":
			first = append(first, o)
		default:
			rest = append(rest, o)
		}
	}
	return [][]*unstructured.Unstructured{first, rest}
}

func (c Cluster) resource(o *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("%s: this cluster does not serve %s: %w", Key(o), gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.Dynamic.Resource(m.Resource).Namespace(o.GetNamespace()), nil
	}
	return c.Dynamic.Resource(m.Resource), nil
}

func (c Cluster) waitCRDs(ctx context.Context, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		var last *unstructured.Unstructured
		err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			u, err := c.Dynamic.Resource(crdGVR).Get(ctx, o.GetName(), metav1.GetOptions{})
			if err != nil {
				return false, nil //nolint:nilerr // not there yet: poll again
			}
			last = u
			return crdEstablished(u), nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not established: %w (%s)", o.GetName(), err, conditionsOf(last))
		}
	}
	fmt.Fprintln(c.Progress, "CRDs established")
	return nil
}

// crdEstablished reports whether a CRD's Established condition is True.
func crdEstablished(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func conditionsOf(u *unstructured.Unstructured) string {
	if u == nil {
		return "not found"
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	return fmt.Sprint(conds)
}

// WaitReady waits for the controller's rollout, printing each new state; on failure it says
// what its pods wait for (an image that cannot be pulled, say).
func WaitReady(ctx context.Context, c Cluster) error {
	var msg string
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		u, err := c.Dynamic.Resource(deploymentGVR).Namespace(Namespace).Get(ctx, "mirrord-controller", metav1.GetOptions{})
		if err != nil {
			return false, nil //nolint:nilerr // not there yet: poll again
		}
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
			return false, err
		}
		done, m, err := rolloutStatus(&d)
		if m != msg {
			msg = m
			fmt.Fprintln(c.Progress, m)
		}
		return done, err
	})
	if err == nil {
		return nil
	}
	why := c.controllerPodProblems(context.WithoutCancel(ctx))
	if len(why) > 0 {
		return fmt.Errorf("the controller is not ready (%s): %v; its pods: %s", msg, err, strings.Join(why, "; "))
	}
	return fmt.Errorf("the controller is not ready (%s): %v; see kubectl -n %s describe deploy/mirrord-controller", msg, err, Namespace)
}

// rolloutStatus is kubectl rollout status's judgement of a Deployment: done, or what it
// waits for; an error when the rollout can no longer finish.
func rolloutStatus(d *appsv1.Deployment) (bool, string, error) {
	if d.Generation > d.Status.ObservedGeneration {
		return false, "waiting for the controller's Deployment to be observed", nil
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return false, "", fmt.Errorf("the controller's rollout exceeded its progress deadline: %s", c.Message)
		}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	switch st := d.Status; {
	case st.UpdatedReplicas < want:
		return false, fmt.Sprintf("waiting for the controller: %d of %d new replicas updated", st.UpdatedReplicas, want), nil
	case st.Replicas > st.UpdatedReplicas:
		return false, fmt.Sprintf("waiting for the controller: %d old replicas pending termination", st.Replicas-st.UpdatedReplicas), nil
	case st.AvailableReplicas < st.UpdatedReplicas:
		return false, fmt.Sprintf("waiting for the controller: %d of %d updated replicas available", st.AvailableReplicas, st.UpdatedReplicas), nil
	}
	return true, "the controller is ready", nil
}

func (c Cluster) controllerPodProblems(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	l, err := c.Dynamic.Resource(podGVR).Namespace(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "kubectl-mirrord.io/component=controller"})
	if err != nil {
		return nil
	}
	var pods []corev1.Pod
	for _, u := range l.Items {
		var p corev1.Pod
		if runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p) == nil {
			pods = append(pods, p)
		}
	}
	return podProblems(pods)
}

// podProblems says, per pod, why its containers do not run: a waiting reason and message
// (ErrImagePull: ... not found), a crash's last exit, or the pod's unschedulable condition.
func podProblems(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				out = append(out, fmt.Sprintf("%s: not scheduled: %s", p.Name, c.Message))
			}
		}
		for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
			switch {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "ContainerCreating" && cs.State.Waiting.Reason != "PodInitializing":
				w := cs.State.Waiting
				s := fmt.Sprintf("%s: %s %s", p.Name, cs.Name, w.Reason)
				if w.Message != "" {
					s += ": " + w.Message
				}
				if t := cs.LastTerminationState.Terminated; t != nil {
					s += fmt.Sprintf(" (last exit %d: %s)", t.ExitCode, t.Reason)
				}
				out = append(out, s)
			case cs.State.Running != nil && !cs.Ready:
				out = append(out, fmt.Sprintf("%s: %s running, not ready", p.Name, cs.Name))
			}
		}
	}
	return out
}

// UninstallOptions are an uninstall's choices.
type UninstallOptions struct {
	// Force ends running sessions instead of refusing.
	Force bool
	// KeepCRDs keeps the CRDs, and with them the policies, profiles and registered clusters.
	KeepCRDs bool
}

// Uninstall removes every object any role installs (AllObjects), and the namespace with what
// the controller made in it. It refuses while sessions run unless o.Force, which ends them
// first, while the controller still runs to end their agents.
func Uninstall(ctx context.Context, c Cluster, o UninstallOptions) error {
	running, err := c.sessions(ctx)
	if err != nil {
		return err
	}
	if err := uninstallBlocked(running, o.Force); err != nil {
		return err
	}
	if len(running) > 0 {
		fmt.Fprintf(c.Progress, "ending %d sessions\n", len(running))
		if err := c.endSessions(ctx); err != nil {
			return err
		}
	}
	all, err := AllObjects()
	if err != nil {
		return err
	}
	for i, phase := range deletionPhases(all, o.KeepCRDs) {
		var gone []*unstructured.Unstructured
		for _, obj := range phase {
			ri, err := c.resource(obj)
			if meta.IsNoMatchError(err) {
				continue // a kind this cluster does not serve has no objects to delete
			}
			if err != nil {
				return err
			}
			err = ri.Delete(ctx, obj.GetName(), metav1.DeleteOptions{PropagationPolicy: ptrTo(metav1.DeletePropagationBackground)})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("deleting %s: %w", Key(obj), err)
			}
			gone = append(gone, obj)
		}
		if err := c.waitGone(ctx, gone); err != nil {
			return err
		}
		if len(gone) > 0 {
			fmt.Fprintf(c.Progress, "deleted %d objects (%s)\n", len(gone), deletionPhaseNames[i])
		}
	}
	return nil
}

func ptrTo[T any](v T) *T { return &v }

// uninstallBlocked refuses an uninstall while sessions run, unless forced.
func uninstallBlocked(running []string, force bool) error {
	if len(running) == 0 || force {
		return nil
	}
	shown := running
	if len(shown) > 5 {
		shown = append(slices.Clone(shown[:5]), fmt.Sprintf("and %d more", len(running)-5))
	}
	return fmt.Errorf("%d sessions are running (%s): end them (kubectl mirrord sessions kill), or give --force to end them now", len(running), strings.Join(shown, ", "))
}

var deletionPhaseNames = []string{"the controller, its RBAC and admission policies", "namespace " + Namespace + " with what the controller made in it", "CRDs, with every session, policy and registered cluster"}

// deletionPhases: what the namespace holds and the cluster-scoped objects, then the namespace,
// then (unless kept) the CRDs, which take every custom object with them.
func deletionPhases(all []*unstructured.Unstructured, keepCRDs bool) [][]*unstructured.Unstructured {
	var objects, namespaces, crds []*unstructured.Unstructured
	for _, o := range all {
		switch o.GetKind() {
		case "CustomResourceDefinition":
			if !keepCRDs {
				crds = append(crds, o)
			}
		case "Namespace":
			namespaces = append(namespaces, o)
		default:
			objects = append(objects, o)
		}
	}
	return [][]*unstructured.Unstructured{objects, namespaces, crds}
}

// sessions lists the running sessions: this cluster's MirrordSessions, and the child sessions
// a Primary elsewhere made here (a child of a session listed already is not another one).
func (c Cluster) sessions(ctx context.Context) ([]string, error) {
	var lists [][]unstructured.Unstructured
	for _, gvr := range sessionGVRs {
		l, err := c.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			lists = append(lists, nil) // not installed
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", gvr.Resource, err)
		}
		lists = append(lists, l.Items)
	}
	return runningSessions(lists[0], lists[1]), nil
}

// runningSessions names sessions and the children whose parent is not among them.
func runningSessions(sessions, children []unstructured.Unstructured) []string {
	var out []string
	uids := map[string]bool{}
	for _, s := range sessions {
		uids[string(s.GetUID())] = true
		out = append(out, "mirrordsession "+s.GetNamespace()+"/"+s.GetName())
	}
	for _, c := range children {
		parent, _, _ := unstructured.NestedString(c.Object, "spec", "parent", "uid")
		if !uids[parent] {
			cluster, _, _ := unstructured.NestedString(c.Object, "spec", "parent", "cluster")
			out = append(out, "mirrordclustersession "+c.GetNamespace()+"/"+c.GetName()+" (of Primary "+cluster+")")
		}
	}
	return out
}

// endSessions deletes every session and waits for them to go: their controller ends their
// agents and child sessions. Sessions it does not end in time (it is not running) lose
// their finalizers; their agents end on their own when heartbeats stop.
func (c Cluster) endSessions(ctx context.Context) error {
	for _, gvr := range sessionGVRs {
		l, err := c.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("ending sessions: %w", err)
		}
		for _, u := range l.Items {
			if err := c.Dynamic.Resource(gvr).Namespace(u.GetNamespace()).Delete(ctx, u.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("ending session %s/%s: %w", u.GetNamespace(), u.GetName(), err)
			}
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := wait.PollUntilContextCancel(wctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		left, err := c.sessions(ctx)
		return err == nil && len(left) == 0, nil
	})
	if err == nil {
		return nil
	}
	fmt.Fprintln(c.Progress, "sessions not ended by their controller in 30s: removing their finalizers")
	for _, gvr := range sessionGVRs {
		l, err := c.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue
		}
		for _, u := range l.Items {
			_, err := c.Dynamic.Resource(gvr).Namespace(u.GetNamespace()).Patch(ctx, u.GetName(), types.MergePatchType,
				[]byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("ending session %s/%s: %w", u.GetNamespace(), u.GetName(), err)
			}
		}
	}
	return nil
}

// waitGone waits until every object in objs is gone.
func (c Cluster) waitGone(ctx context.Context, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		ri, err := c.resource(o)
		if err != nil {
			continue
		}
		err = wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			_, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			return fmt.Errorf("%s is not gone: %w", Key(o), err)
		}
	}
	return nil
}
