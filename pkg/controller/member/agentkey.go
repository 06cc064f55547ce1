package member

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// AgentKeySecretName is the name of the Secret holding agent Job j's key ("" if j has none).
func AgentKeySecretName(j *batchv1.Job) string { return agentconfig.KeySecretOf(j.Spec.Template.Spec) }

// agentKeySecret is the Secret holding key, an agent key, named name and owned by owner:
// the session about to create its Job, until adoptAgentKey adds the Job. It goes with the
// last of its owners: with the session if the Job was never made.
func agentKeySecret(ns, name string, owner metav1.OwnerReference, key []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			Namespace:       ns,
			Labels:          map[string]string{mirrordv1alpha1.LabelComponent: mirrordv1alpha1.ComponentAgentKey},
			OwnerReferences: []metav1.OwnerReference{owner},
		},
		Type:      corev1.SecretTypeOpaque,
		Immutable: ptr.To(true),
		Data:      map[string][]byte{agentconfig.KeyFile: key},
	}
}

// jobRef is Job j's reference among its key Secret's owners.
func jobRef(j *batchv1.Job) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: j.Name, UID: j.UID,
		Controller: ptr.To(false), BlockOwnerDeletion: ptr.To(false)}
}

// randomAgentKey is a new agent key.
func randomAgentKey() ([]byte, error) {
	key := make([]byte, protocol.AgentKeySize)
	_, err := rand.Read(key)
	return key, err
}

// newAgentKey writes a new agent key in Secret name, owned by child.
func (c *Controller) newAgentKey(ctx context.Context, ns, name string, child metav1.OwnerReference) error {
	key, err := randomAgentKey()
	if err != nil {
		return err
	}
	if _, err := c.kube.CoreV1().Secrets(ns).Create(ctx, agentKeySecret(ns, name, child, key), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("writing an agent key: %w", err)
	}
	return nil
}

// errKeyLost is an agent Job whose key Secret is gone. A new key cannot take its place (an
// agent that started has read the old one), so the Job is replaced.
var errKeyLost = errors.New("the agent's key Secret is gone")

// ensureAgentKey makes sure agent Job j's key Secret is the Job's, so it lives as long as the
// Job whoever made it: once per Job (by UID) for the life of this controller, or again after
// the Secret was deleted. A controller that stopped between the Job and adding the Job as the
// Secret's owner is made up for here. The Secret can be gone: the garbage collector deletes
// it when the session that wrote it was deleted before our cache said so (errKeyLost).
func (c *Controller) ensureAgentKey(ctx context.Context, j *batchv1.Job) error {
	if _, ok := c.keyed.Load(j.UID); ok {
		return nil
	}
	name := AgentKeySecretName(j)
	if name == "" {
		return fmt.Errorf("agent Job %s names no key Secret: it was made by an older controller; it is replaced when its sessions end", j.Name)
	}
	secrets := c.kube.CoreV1().Secrets(j.Namespace)
	_, err := secrets.Patch(ctx, name, types.StrategicMergePatchType, ownerPatch(jobRef(j), false), metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return errKeyLost
	}
	if err != nil {
		return fmt.Errorf("the key of agent Job %s: %w", j.Name, err)
	}
	c.keyed.Store(j.UID, true)
	klog.FromContext(ctx).V(2).Info("Agent key owned by its Job", "job", j.Name, "secret", name)
	return nil
}
