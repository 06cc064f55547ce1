package member

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/authz"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/naming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/worker"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/dbbranch"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/policy"
)

// The Default cluster makes each database branch (MirrordDBBranch) a pod of the engine's image
// in the target's namespace, next to the source database, with a Service the session's
// outgoing traffic reaches. The pod's container gets the target container's own definitions
// of the connection's variables (Secret and ConfigMap references included, so the controller
// never reads a Secret), and runs this binary (copied in by an init container) to seed the
// branch with the engine's tools and serve it. A branch in its target's namespace owns its
// pod and Service; the controller also deletes those whose branch is gone (from their events,
// and at start).

// DBBranchImages are the engines' images by default: the official ones, "{version}" replaced
// by the branch's version or the engine's default one.
var DBBranchImages = map[mirrordv1alpha1.DBEngine]string{
	mirrordv1alpha1.DBEnginePostgreSQL: "docker.io/library/postgres:{version}",
	mirrordv1alpha1.DBEngineMySQL:      "docker.io/library/mysql:{version}",
	mirrordv1alpha1.DBEngineMariaDB:    "docker.io/library/mariadb:{version}",
}

// dbDefaultVersions are the versions a branch gets when its config names none.
var dbDefaultVersions = map[mirrordv1alpha1.DBEngine]string{
	mirrordv1alpha1.DBEnginePostgreSQL: "16",
	mirrordv1alpha1.DBEngineMySQL:      "8.0",
	mirrordv1alpha1.DBEngineMariaDB:    "11",
}

// dbBranchUser is the engines' user in their official images (and the rig's PostgreSQL).
const dbBranchUser = 999

// Where the branch's container finds this binary and keeps its data.
const (
	dbBinVolume, dbBinDir   = "mirrord-bin", "/mirrord-bin"
	dbWorkVolume, dbWorkDir = "branch", "/var/lib/mirrord-branch"
)

// dbBranchesControllerName names the branch reconciler in logs and metrics.
const dbBranchesControllerName = "dbbranch"

// branchImage is engine's image at version.
func branchImage(images map[mirrordv1alpha1.DBEngine]string, e mirrordv1alpha1.DBEngine, version string) string {
	ref := images[e]
	if ref == "" {
		ref = DBBranchImages[e]
	}
	if version == "" {
		version = dbDefaultVersions[e]
	}
	return strings.ReplaceAll(ref, "{version}", version)
}

// envRef matches $(NAME) references in an env var's value, which Kubernetes expands.
var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// branchEnv is the branch container's environment: for each of the connection's sources that
// is a variable of the target's container, that variable's own definition (and those its
// value refers to), or the container's envFrom when only that can hold it; then the
// dbbranch.Env* variables the seeding reads, as references to them, literals or Secret keys.
func branchEnv(c *corev1.Container, conn mirrordv1alpha1.DBConnection, spec dbbranch.Branch) ([]corev1.EnvVar, []corev1.EnvFromSource, error) {
	var env []corev1.EnvVar
	var envFrom []corev1.EnvFromSource
	copied := map[string]bool{}
	var copyVar func(name string) bool
	copyVar = func(name string) bool {
		if copied[name] {
			return true
		}
		i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
		if i < 0 {
			if len(c.EnvFrom) > 0 && envFrom == nil {
				for _, f := range c.EnvFrom {
					f = *f.DeepCopy()
					// Optional: a Secret the target may go without must not stop the branch.
					if f.SecretRef != nil {
						f.SecretRef.Optional = ptr.To(true)
					}
					if f.ConfigMapRef != nil {
						f.ConfigMapRef.Optional = ptr.To(true)
					}
					envFrom = append(envFrom, f)
				}
			}
			return len(c.EnvFrom) > 0
		}
		e := *c.Env[i].DeepCopy()
		if e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil {
			return false // names the target's container, which the branch's pod has not
		}
		copied[name] = true
		for _, m := range envRef.FindAllStringSubmatch(e.Value, -1) {
			copyVar(m[1]) // defined first, as Kubernetes expands in order
		}
		env = append(env, e)
		return true
	}
	set := func(to string, src *mirrordv1alpha1.DBValueSource) error {
		switch {
		case src == nil:
			return nil
		case src.Secret != nil:
			env = append(env, corev1.EnvVar{Name: to, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: src.Secret.Name}, Key: src.Secret.Key}}})
		case src.Value != "":
			env = append(env, corev1.EnvVar{Name: to, Value: src.Value})
		default:
			if !copyVar(src.Variable) {
				return fmt.Errorf("the target's container %s has no variable %s (in env or envFrom): the branch cannot find the source database; name the variable the target reads its connection from", c.Name, src.Variable)
			}
			env = append(env, corev1.EnvVar{Name: to, Value: "$(" + src.Variable + ")"})
		}
		return nil
	}
	if conn.URL != nil {
		if err := set(dbbranch.EnvURL, conn.URL); err != nil {
			return nil, nil, err
		}
	}
	if p := conn.Params; p != nil {
		for _, s := range []struct {
			to  string
			src *mirrordv1alpha1.DBValueSource
		}{{dbbranch.EnvHost, &p.Host}, {dbbranch.EnvPort, p.Port}, {dbbranch.EnvUser, p.User}, {dbbranch.EnvPassword, p.Password}, {dbbranch.EnvDatabase, p.Database}} {
			if err := set(s.to, s.src); err != nil {
				return nil, nil, err
			}
		}
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, nil, err
	}
	env = append(env, corev1.EnvVar{Name: dbbranch.EnvBranch, Value: string(raw)})
	return env, envFrom, nil
}

// branchLabels mark a branch's pod and Service with the branch they serve.
func branchLabels(b *mirrordv1alpha1.MirrordDBBranch) map[string]string {
	return map[string]string{
		mirrordv1alpha1.LabelComponent:       mirrordv1alpha1.ComponentDBBranch,
		mirrordv1alpha1.LabelBranchUID:       string(b.UID),
		mirrordv1alpha1.LabelBranchNamespace: b.Namespace,
		mirrordv1alpha1.LabelBranchName:      b.Name,
	}
}

// branchOwner is b as the owner of its pod and Service, when they share its namespace.
func branchOwner(b *mirrordv1alpha1.MirrordDBBranch, ns string) []metav1.OwnerReference {
	if b.Namespace != ns {
		return nil
	}
	return []metav1.OwnerReference{*metav1.NewControllerRef(b, mirrordv1alpha1.SchemeGroupVersion.WithKind("MirrordDBBranch"))}
}

// constructBranchPod builds branch b's pod in namespace ns from the target's container c.
func constructBranchPod(b *mirrordv1alpha1.MirrordDBBranch, ns string, c *corev1.Container, opts AgentOptions, images map[mirrordv1alpha1.DBEngine]string) (*corev1.Pod, error) {
	port := dbbranch.DefaultPort(b.Spec.Engine)
	env, envFrom, err := branchEnv(c, b.Spec.Connection, dbbranch.Branch{Engine: b.Spec.Engine, Database: b.Spec.Database, Copy: b.Spec.Copy, Port: port})
	if err != nil {
		return nil, err
	}
	restricted := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	mount := func(name, path string, ro bool) corev1.VolumeMount {
		return corev1.VolumeMount{Name: name, MountPath: path, ReadOnly: ro}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: naming.DBBranch(b.UID), Namespace: ns, Labels: branchLabels(b),
			Annotations: sidecarOptOut, OwnerReferences: branchOwner(b, ns)},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To[int64](10),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](dbBranchUser), RunAsGroup: ptr.To[int64](dbBranchUser),
				FSGroup: ptr.To[int64](dbBranchUser), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Volumes: []corev1.Volume{
				{Name: dbBinVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(resource.MustParse("256Mi"))}}},
				{Name: dbWorkVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(resource.MustParse("64Mi"))}}},
			},
			InitContainers: []corev1.Container{{
				Name: "install", Image: opts.Image, Args: []string{"db-branch", "install", dbBinDir},
				VolumeMounts:    []corev1.VolumeMount{mount(dbBinVolume, dbBinDir, false)},
				SecurityContext: restricted,
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
					Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}},
			}},
			Containers: []corev1.Container{{
				Name:    "db",
				Image:   branchImage(images, b.Spec.Engine, b.Spec.Version),
				Command: []string{dbBinDir + "/kubectl-mirrord", "db-branch", "serve", "--work-dir", dbWorkDir},
				Env:     env, EnvFrom: envFrom,
				Ports: []corev1.ContainerPort{{Name: "db", ContainerPort: int32(port)}},
				// The server listens on the network only once seeded.
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(port)}}, PeriodSeconds: 1},
				VolumeMounts:   []corev1.VolumeMount{mount(dbBinVolume, dbBinDir, true), mount(dbWorkVolume, dbWorkDir, false), mount("tmp", "/tmp", false)},
				// Why the seeding failed, in the pod's status.
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
				SecurityContext:          restricted,
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
					Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}},
			}},
		},
	}, nil
}

// constructBranchService is the Service the branch answers on.
func constructBranchService(b *mirrordv1alpha1.MirrordDBBranch, ns string) *corev1.Service {
	port := int32(dbbranch.DefaultPort(b.Spec.Engine))
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: naming.DBBranch(b.UID), Namespace: ns, Labels: branchLabels(b), OwnerReferences: branchOwner(b, ns)},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{mirrordv1alpha1.LabelBranchUID: string(b.UID), mirrordv1alpha1.LabelComponent: mirrordv1alpha1.ComponentDBBranch},
			Ports:    []corev1.ServicePort{{Name: "db", Port: port, TargetPort: intstr.FromInt32(port)}},
		},
	}
}

// BranchState is the Default cluster's part of a branch's status: what its pod says (and, for
// a Primary that is not the Default, what the branch's copy there says).
type BranchState struct {
	Phase           mirrordv1alpha1.DBBranchPhase
	Reason, Message string
	Endpoint        *mirrordv1alpha1.DBEndpoint
}

// branchStateOf reads branch b's state from its pod; deadline is when a Pending branch fails.
func branchStateOf(b *mirrordv1alpha1.MirrordDBBranch, ns string, pod *corev1.Pod, now time.Time) BranchState {
	timeout := time.Duration(b.Spec.CreationTimeoutSeconds) * time.Second
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	if pod != nil {
		for _, cs := range append(slices.Clone(pod.Status.InitContainerStatuses), pod.Status.ContainerStatuses...) {
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
				msg := strings.TrimSpace(t.Message)
				if msg == "" {
					msg = fmt.Sprintf("exit code %d (%s)", t.ExitCode, t.Reason)
				}
				return BranchState{Phase: mirrordv1alpha1.DBBranchFailed, Reason: mirrordv1alpha1.ReasonBranchCopyFailed,
					Message: fmt.Sprintf("the branch's %s container failed: %s", cs.Name, msg)}
			}
			if w := cs.State.Waiting; w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff" || w.Reason == "CreateContainerConfigError" || w.Reason == "InvalidImageName") {
				return BranchState{Phase: mirrordv1alpha1.DBBranchFailed, Reason: mirrordv1alpha1.ReasonBranchPodFailed,
					Message: fmt.Sprintf("the branch's %s container cannot start: %s: %s", cs.Name, w.Reason, w.Message)}
			}
		}
		if pod.Status.Phase == corev1.PodFailed {
			return BranchState{Phase: mirrordv1alpha1.DBBranchFailed, Reason: mirrordv1alpha1.ReasonBranchPodFailed, Message: "the branch's pod failed: " + pod.Status.Message}
		}
		if podReady(pod) {
			return BranchState{Phase: mirrordv1alpha1.DBBranchReady, Reason: mirrordv1alpha1.ReasonBranchReady,
				Message: "serving", Endpoint: &mirrordv1alpha1.DBEndpoint{Host: naming.DBBranch(b.UID) + "." + ns + ".svc",
					Port: int32(dbbranch.DefaultPort(b.Spec.Engine)), Database: b.Spec.Database}}
		}
	}
	if pod == nil && b.Status.Phase == mirrordv1alpha1.DBBranchReady {
		return BranchState{Phase: mirrordv1alpha1.DBBranchFailed, Reason: mirrordv1alpha1.ReasonBranchPodFailed,
			Message: "the branch's pod is gone (evicted, or deleted), and its data with it: destroy the branch (kubectl mirrord db-branches destroy) and exec again"}
	}
	if now.Sub(b.CreationTimestamp.Time) > timeout {
		return BranchState{Phase: mirrordv1alpha1.DBBranchFailed, Reason: mirrordv1alpha1.ReasonBranchTimeout,
			Message: fmt.Sprintf("not Ready within its creation timeout (%s): a large source takes longer (creation_timeout_secs)", timeout)}
	}
	return BranchState{Phase: mirrordv1alpha1.DBBranchPending, Reason: mirrordv1alpha1.ReasonBranchSeeding, Message: "copying from the source database"}
}

// syncBranch brings branch key's pod and Service in line with it, and its status with them.
func (c *Controller) syncBranch(ctx context.Context, key cache.ObjectName) error {
	b, err := c.branches.MirrordDBBranches(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) || (err == nil && b.DeletionTimestamp != nil) {
		return c.removeBranchObjects(ctx, key, "")
	}
	if err != nil {
		return err
	}
	if err := c.removeBranchObjects(ctx, key, b.UID); err != nil { // of an earlier branch of the name
		return err
	}
	if b.Namespace == c.opts.Namespace && b.Labels[mirrordv1alpha1.LabelPrimary] != "" {
		// A copy from a Primary that stopped renewing its Lease here lives its TTL more, as
		// if no session used it, then goes (the Primary deletes its copies itself).
		gone, wait := c.primarySilent(&b.ObjectMeta, time.Duration(b.Spec.TTLSeconds)*time.Second)
		if gone {
			klog.FromContext(ctx).Info("Deleting a database branch copy whose Primary went silent for its TTL", "branch", key, "primary", b.Labels[mirrordv1alpha1.LabelPrimary])
			err := c.mirrord.MirrordV1alpha1().MirrordDBBranches(b.Namespace).Delete(ctx, b.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &b.UID}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return err
			}
			return c.removeBranchObjects(ctx, key, "")
		}
		err := c.reconcileBranch(ctx, key, b)
		var r *worker.Requeue
		switch {
		case err == nil:
			return &worker.Requeue{After: wait}
		case errors.As(err, &r):
			return &worker.Requeue{After: min(r.After, wait)}
		}
		return err
	}
	return c.reconcileBranch(ctx, key, b)
}

// reconcileBranch makes branch b's pod and Service, and writes its status from them.
func (c *Controller) reconcileBranch(ctx context.Context, key cache.ObjectName, b *mirrordv1alpha1.MirrordDBBranch) error {
	ns := b.Spec.Target.Namespace
	fail := func(reason, msg string) error {
		if err := c.removeBranchObjects(ctx, key, ""); err != nil {
			return err
		}
		return c.writeBranchStatus(ctx, b, BranchState{Phase: mirrordv1alpha1.DBBranchFailed, Reason: reason, Message: msg})
	}
	if b.Status.Phase == mirrordv1alpha1.DBBranchFailed {
		return c.removeBranchObjects(ctx, key, "")
	}
	if b.Namespace != ns && b.Namespace != c.opts.Namespace {
		return fail(mirrordv1alpha1.ReasonTargetOutsideNamespace, fmt.Sprintf("a branch copies a target of its own namespace (%s), not of %s", b.Namespace, ns))
	}
	if d := authz.Member(c.opts.ExcludedNamespaces, mirrordv1alpha1.MirrordClusterSessionSpec{Target: b.Spec.Target, Parent: mirrordv1alpha1.ParentReference{Namespace: ns}}); d != nil {
		return fail(d.Reason, d.Message)
	}
	pod, err := c.pods.Pods(ns).Get(naming.DBBranch(b.UID))
	if apierrors.IsNotFound(err) {
		pod = nil
	} else if err != nil {
		return err
	}
	if pod == nil && b.Status.Phase != mirrordv1alpha1.DBBranchReady {
		obj, err := c.lookup(b.Spec.Target)
		if apierrors.IsNotFound(err) {
			return fail(mirrordv1alpha1.ReasonTargetNotFound, fmt.Sprintf("%s not found in namespace %s of the Default cluster, where a branch copies its database", strings.ToLower(string(b.Spec.Target.Kind))+"/"+b.Spec.Target.Name, ns))
		}
		if err != nil {
			return err
		}
		ps, err := c.policiesFor(ns)
		if err != nil {
			return err
		}
		if v := policy.CheckBranch(ps, b.Spec.Target, obj.meta.Labels, b.Spec.Copy.Mode); v != nil {
			return fail(mirrordv1alpha1.ReasonBlockedByPolicy, v.Error())
		}
		container, ok := branchContainer(obj, b.Spec.Target.Container)
		if !ok {
			return fail(mirrordv1alpha1.ReasonTargetNotFound, fmt.Sprintf("the target has no container %q", b.Spec.Target.Container))
		}
		p, err := constructBranchPod(b, ns, container, c.opts.Agent, c.opts.DBImages)
		if err != nil {
			return fail(mirrordv1alpha1.ReasonBranchSourceUnknown, err.Error())
		}
		if _, err := c.kube.CoreV1().Services(ns).Create(ctx, constructBranchService(b, ns), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating branch %s's Service: %w", key, err)
		}
		created, err := c.kube.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating branch %s's pod: %w", key, err)
		}
		if err == nil {
			pod = created
			klog.FromContext(ctx).V(1).Info("Created a database branch's pod", "branch", key, "pod", klog.KObj(created))
		}
	}
	st := branchStateOf(b, ns, pod, c.opts.Clock.Now())
	if st.Phase == mirrordv1alpha1.DBBranchFailed {
		if err := c.removeBranchObjects(ctx, key, ""); err != nil {
			return err
		}
	}
	if err := c.writeBranchStatus(ctx, b, st); err != nil {
		return err
	}
	if st.Phase == mirrordv1alpha1.DBBranchPending {
		// The creation timeout passes without an event.
		return &worker.Requeue{After: 5 * time.Second}
	}
	return nil
}

// branchContainer is the target's container the branch reads its connection from.
func branchContainer(obj targetObject, name string) (*corev1.Container, bool) {
	spec := obj.template
	if spec == nil && obj.pod != nil {
		spec = &obj.pod.Spec
	}
	if spec == nil {
		return nil, false
	}
	if name == "" {
		var ok bool
		if name, ok = pickContainer(spec, ""); !ok {
			return nil, false
		}
	}
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i], true
		}
	}
	return nil, false
}

func (c *Controller) writeBranchStatus(ctx context.Context, b *mirrordv1alpha1.MirrordDBBranch, st BranchState) error {
	return WriteBranchStatus(ctx, c.mirrord, b, st)
}

// WriteBranchStatus writes the fields of st (the Default's part of the status) when they
// changed, as a merge patch: the Primary writes the branch's sessions and expiry beside them.
func WriteBranchStatus(ctx context.Context, mirrord versioned.Interface, b *mirrordv1alpha1.MirrordDBBranch, st BranchState) error {
	cond := metav1.Condition{Type: mirrordv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: st.Reason, Message: st.Message, ObservedGeneration: b.Generation}
	if st.Phase == mirrordv1alpha1.DBBranchReady {
		cond.Status = metav1.ConditionTrue
	}
	conds := slices.Clone(b.Status.Conditions)
	meta.SetStatusCondition(&conds, cond)
	if b.Status.Phase == st.Phase && b.Status.Reason == st.Reason && b.Status.Message == st.Message && equalEndpoint(b.Status.Endpoint, st.Endpoint) {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{
		"phase": st.Phase, "reason": st.Reason, "message": st.Message, "endpoint": st.Endpoint, "conditions": conds,
	}})
	if err != nil {
		return err
	}
	_, err = mirrord.MirrordV1alpha1().MirrordDBBranches(b.Namespace).Patch(ctx, b.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func equalEndpoint(a, b *mirrordv1alpha1.DBEndpoint) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// removeBranchObjects deletes the pods and Services of the branch named key, except those of
// keep (the branch of that name now).
func (c *Controller) removeBranchObjects(ctx context.Context, key cache.ObjectName, keep types.UID) error {
	sel := labels.SelectorFromSet(labels.Set{
		mirrordv1alpha1.LabelComponent:       mirrordv1alpha1.ComponentDBBranch,
		mirrordv1alpha1.LabelBranchNamespace: key.Namespace,
		mirrordv1alpha1.LabelBranchName:      key.Name,
	})
	pods, err := c.pods.List(sel)
	if err != nil {
		return err
	}
	for _, p := range pods {
		if types.UID(p.Labels[mirrordv1alpha1.LabelBranchUID]) == keep || p.DeletionTimestamp != nil {
			continue
		}
		if err := c.kube.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting branch pod %s/%s: %w", p.Namespace, p.Name, err)
		}
		klog.FromContext(ctx).V(1).Info("Deleted a database branch's pod", "branch", key, "pod", klog.KObj(p))
	}
	if keep != "" {
		return nil
	}
	// Services are not cached here: asked of the API server, only once the branch is gone.
	svcs, err := c.kube.CoreV1().Services(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return err
	}
	for _, s := range svcs.Items {
		if err := c.kube.CoreV1().Services(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting branch Service %s/%s: %w", s.Namespace, s.Name, err)
		}
	}
	return nil
}

// enqueueBranchOf queues the branch a branch pod serves.
func (c *Controller) enqueueBranchOf(obj any) {
	o, ok := obj.(metav1.Object)
	if !ok || o.GetLabels()[mirrordv1alpha1.LabelComponent] != mirrordv1alpha1.ComponentDBBranch || c.branchQueue == nil {
		return
	}
	l := o.GetLabels()
	c.branchQueue.Add(cache.NewObjectName(l[mirrordv1alpha1.LabelBranchNamespace], l[mirrordv1alpha1.LabelBranchName]))
}
