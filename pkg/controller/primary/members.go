package primary

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	membercontroller "github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/member"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/naming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/worker"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/credentials"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
	mirrordinformers "github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/informers/externalversions"
	mirrordlisters "github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/listers/mirrord/v1alpha1"
)

// How often the Primary renews its Lease in each member (which is also its reachability
// probe), how often it asks for the version and sweeps orphans, and how often an unchanged
// MirrordCluster status is rewritten.
const (
	probeInterval       = 5 * time.Second
	probeTimeout        = 4 * time.Second
	slowProbeEvery      = 6
	statusWriteInterval = 30 * time.Second
)

// member is one cluster the Primary fans sessions out to: a registered MirrordCluster, or the
// Primary itself when it is also a Workload.
type member struct {
	name      string
	self      bool
	roles     []mirrordv1alpha1.ClusterRole
	namespace string
	identity  string // what the member was built from; a change rebuilds it
	// secretName names its credentials Secret; token is the one its clients use now
	// (renewToken replaces it).
	secretName string
	token      atomic.Pointer[string]

	kube     kubernetes.Interface
	mirrord  versioned.Interface
	children mirrordlisters.MirrordClusterSessionLister
	synced   cache.InformerSynced
	// branchCopies are this Primary's database branches copied into the member, when it is
	// the Default and not this cluster (branches.go); nil otherwise.
	branchCopies       mirrordlisters.MirrordDBBranchLister
	branchCopiesSynced cache.InformerSynced
	// registryCopies are this Primary's queue registries copied into the member, when it is a
	// Workload and not this cluster (queues.go); nil otherwise.
	registryCopies       mirrordlisters.MirrordWorkloadQueueRegistryLister
	registryCopiesSynced cache.InformerSynced
	cancel               context.CancelFunc

	mu        sync.Mutex
	reachable bool
	probeErr  string
	version   string
	lastProbe time.Time
}

// state returns the member's reachability as last probed.
func (m *member) state() (reachable bool, errMsg string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reachable, m.probeErr
}

func (m *member) has(r mirrordv1alpha1.ClusterRole) bool {
	for _, x := range m.roles {
		if x == r {
			return true
		}
	}
	return false
}

func rolesOf(workload, def bool) []mirrordv1alpha1.ClusterRole {
	var r []mirrordv1alpha1.ClusterRole
	if workload {
		r = append(r, mirrordv1alpha1.ClusterRoleWorkload)
	}
	if def {
		r = append(r, mirrordv1alpha1.ClusterRoleDefault)
	}
	return r
}

// identityOf is what a member's clients are built from; its token is not part of it (a new
// token replaces the old in place, see bearer).
func identityOf(mc *mirrordv1alpha1.MirrordCluster, secret *corev1.Secret) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%v|%v|%s|", mc.Spec.Server, mc.Spec.Namespace, mc.Spec.Workload, mc.Spec.Default, mc.UID)
	if secret != nil {
		h.Write(secret.Data[credentials.SecretKeyCA])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// start runs the member's child-session informer and its prober until stop is called.
func (c *Controller) startMember(ctx context.Context, m *member) {
	ctx, m.cancel = context.WithCancel(ctx)
	factory := mirrordinformers.NewSharedInformerFactoryWithOptions(m.mirrord, 0,
		mirrordinformers.WithNamespace(m.namespace),
		mirrordinformers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.Set{mirrordv1alpha1.LabelPrimary: c.roles.ClusterName}.String()
		}))
	inf := factory.Mirrord().V1alpha1().MirrordClusterSessions()
	m.children, m.synced = inf.Lister(), inf.Informer().HasSynced
	_, _ = inf.Informer().AddEventHandler(worker.FuncHandler(func(obj any) {
		if o, ok := obj.(metav1.Object); ok {
			c.enqueueParent(o.GetLabels())
		}
	}))
	if m.has(mirrordv1alpha1.ClusterRoleDefault) && !m.self {
		copies := factory.Mirrord().V1alpha1().MirrordDBBranches()
		m.branchCopies, m.branchCopiesSynced = copies.Lister(), copies.Informer().HasSynced
		_, _ = copies.Informer().AddEventHandler(worker.FuncHandler(func(obj any) {
			if o, ok := obj.(metav1.Object); ok {
				enqueueParentIn(c.branchQueue, o.GetLabels())
			}
		}))
	}
	if m.has(mirrordv1alpha1.ClusterRoleWorkload) && !m.self {
		copies := factory.Mirrord().V1alpha1().MirrordWorkloadQueueRegistries()
		m.registryCopies, m.registryCopiesSynced = copies.Lister(), copies.Informer().HasSynced
		_, _ = copies.Informer().AddEventHandler(worker.FuncHandler(func(obj any) {
			if o, ok := obj.(metav1.Object); ok {
				enqueueParentIn(c.registryQueue, o.GetLabels())
			}
		}))
	}
	factory.Start(ctx.Done())
	go c.probeLoop(ctx, m)
}

// probeLoop renews the Primary's Lease in the member (a member removes a Primary's sessions
// when it stops), records reachability and version, and sweeps orphaned children.
func (c *Controller) probeLoop(ctx context.Context, m *member) {
	logger := klog.FromContext(ctx).WithValues("cluster", m.name)
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for n := 0; ; n++ {
		slow := n%slowProbeEvery == 0
		err := c.renewLease(ctx, m)
		var version string
		if err == nil && slow {
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			v, verr := m.kube.Discovery().ServerVersionWithContext(pctx)
			cancel()
			if verr == nil {
				version = v.GitVersion
			}
		}
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		was := m.reachable
		m.reachable, m.probeErr, m.lastProbe = err == nil, "", c.clock.Now()
		if err != nil {
			m.probeErr = err.Error()
		}
		if version != "" {
			m.version = version
		}
		m.mu.Unlock()
		if was != (err == nil) {
			if err != nil {
				logger.Info("Member cluster unreachable", "err", err)
			} else {
				logger.Info("Member cluster reachable")
			}
			c.enqueueAllSessions()
			if m.has(mirrordv1alpha1.ClusterRoleDefault) {
				c.enqueueAllBranches()
			}
			c.enqueueAllRegistries()
		}
		if !m.self {
			c.writeClusterStatus(ctx, m)
		}
		if err == nil && slow && m.synced() {
			c.sweepOrphans(ctx, m)
			c.sweepBranchCopies(ctx, m)
			c.sweepRegistryCopies(ctx, m)
		}
		if slow && !m.self {
			c.renewToken(ctx, m) // whatever the Lease's fate: renewing is its own request
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Controller) renewLease(ctx context.Context, m *member) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	leases := m.kube.CoordinationV1().Leases(m.namespace)
	name := naming.PrimaryLease(c.roles.ClusterName)
	now := metav1.NewMicroTime(c.clock.Now())
	l, err := leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: m.namespace},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(c.roles.ClusterName),
				LeaseDurationSeconds: ptr.To(int32(membercontroller.DefaultPrimaryLeaseDuration.Seconds())),
				AcquireTime:          &now, RenewTime: &now,
			},
		}, metav1.CreateOptions{})
		return describeProbeErr(err)
	}
	if err != nil {
		return describeProbeErr(err)
	}
	l.Spec.RenewTime = &now
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return describeProbeErr(err)
}

// describeProbeErr turns the errors an admin can fix into advice.
func describeProbeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("credentials rejected (%v): the token in the cluster's Secret is invalid or expired; register the cluster again", err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("access denied (%v): install the workload overlay on the member, whose RBAC lets the Primary in", err)
	}
	return err
}

// writeClusterStatus records reachability on the MirrordCluster: on every change, and every
// statusWriteInterval otherwise.
func (c *Controller) writeClusterStatus(ctx context.Context, m *member) {
	mc, err := c.clusters.Get(m.name)
	if err != nil {
		return
	}
	m.mu.Lock()
	reachable, msg, version, probed := m.reachable, m.probeErr, m.version, m.lastProbe
	m.mu.Unlock()
	st := mc.Status.DeepCopy()
	cond := metav1.Condition{Type: mirrordv1alpha1.ConditionReachable, Status: metav1.ConditionTrue, Reason: "LeaseRenewed", Message: "the Primary renews its lease in this cluster", ObservedGeneration: mc.Generation}
	if !reachable {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "Unreachable", msg
	}
	changed := meta.SetStatusCondition(&st.Conditions, cond) || (version != "" && st.KubernetesVersion != version)
	if !changed && st.LastProbeTime != nil && probed.Sub(st.LastProbeTime.Time) < statusWriteInterval {
		return
	}
	if version != "" {
		st.KubernetesVersion = version
	}
	st.LastProbeTime = ptr.To(metav1.NewTime(probed))
	updated := mc.DeepCopy()
	updated.Status = *st
	if _, err := c.mirrord.MirrordV1alpha1().MirrordClusters().UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
		klog.FromContext(ctx).Error(err, "Updating MirrordCluster status", "cluster", m.name)
	}
}

// sweepOrphans deletes children whose parent no longer exists: the parent's finalizer does
// not wait for members that were unreachable when it was deleted.
func (c *Controller) sweepOrphans(ctx context.Context, m *member) {
	children, err := m.children.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ch := range children {
		parent, err := c.sessions.MirrordSessions(ch.Labels[mirrordv1alpha1.LabelParentNamespace]).Get(ch.Labels[mirrordv1alpha1.LabelParentName])
		if err == nil && string(parent.UID) == ch.Labels[mirrordv1alpha1.LabelParentUID] {
			continue
		}
		if err != nil && !apierrors.IsNotFound(err) {
			continue
		}
		klog.FromContext(ctx).Info("Deleting orphaned child session", "cluster", m.name, "child", ch.Name)
		_ = m.mirrord.MirrordV1alpha1().MirrordClusterSessions(ch.Namespace).Delete(ctx, ch.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &ch.UID}})
	}
}
