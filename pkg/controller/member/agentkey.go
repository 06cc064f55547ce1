package member

import (
	"context"
	"crypto/rand"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// ComponentAgentKey labels agent key Secrets.
const ComponentAgentKey = "agent-key"

// agentKeySecret is the Secret holding key, the agent key of Job j: named after the Job and
// owned by it, so it goes with the Job; it names the Job's UID so that neither the agent nor
// the relay takes an earlier Job's key (agentconfig.ReadKey).
func agentKeySecret(j *batchv1.Job, key []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      j.Name,
			Namespace: j.Namespace,
			Labels:    map[string]string{mirrordv1alpha1.LabelComponent: ComponentAgentKey},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1", Kind: "Job", Name: j.Name, UID: j.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Type:      corev1.SecretTypeOpaque,
		Immutable: ptr.To(true),
		Data: map[string][]byte{
			agentconfig.KeyFile:       key,
			agentconfig.KeyJobUIDFile: []byte(j.UID),
		},
	}
}

// ensureAgentKey makes sure agent Job j has its key Secret: once per Job (by UID) for the
// life of this controller. A Secret of the same name left by an earlier Job (the garbage
// collector has not removed it yet) is replaced.
func (c *Controller) ensureAgentKey(ctx context.Context, j *batchv1.Job) error {
	if _, ok := c.keyed.Load(j.UID); ok {
		return nil
	}
	secrets := c.kube.CoreV1().Secrets(j.Namespace)
	for range 2 {
		key := make([]byte, protocol.AgentKeySize)
		if _, err := rand.Read(key); err != nil {
			return err
		}
		_, err := secrets.Create(ctx, agentKeySecret(j, key), metav1.CreateOptions{})
		if err == nil {
			c.keyed.Store(j.UID, true)
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating the key of agent Job %s: %w", j.Name, err)
		}
		old, err := secrets.Get(ctx, j.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading the key of agent Job %s: %w", j.Name, err)
		}
		if string(old.Data[agentconfig.KeyJobUIDFile]) == string(j.UID) {
			c.keyed.Store(j.UID, true)
			return nil
		}
		klog.FromContext(ctx).V(1).Info("Replacing an earlier agent Job's key", "secret", old.Name, "job", j.Name)
		err = secrets.Delete(ctx, old.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &old.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("removing an earlier key of agent Job %s: %w", j.Name, err)
		}
	}
	return fmt.Errorf("the key of agent Job %s could not be written: another writer keeps replacing it", j.Name)
}
