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

// AgentKeySecretName is the name of the Secret holding agent Job j's key ("" if j has none).
func AgentKeySecretName(j *batchv1.Job) string { return agentconfig.KeySecretOf(j.Spec.Template.Spec) }

// agentKeySecret is the Secret holding key, the agent key of Job j: owned by the Job, so it
// goes with it, and naming the Job's UID, so that the agent checks it has its own Job's
// (agentconfig.ReadKey).
func agentKeySecret(j *batchv1.Job, key []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      AgentKeySecretName(j),
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
// life of this controller.
func (c *Controller) ensureAgentKey(ctx context.Context, j *batchv1.Job) error {
	if _, ok := c.keyed.Load(j.UID); ok {
		return nil
	}
	name := AgentKeySecretName(j)
	if name == "" {
		return fmt.Errorf("agent Job %s names no key Secret: it was made by an older controller; it is replaced when its sessions end", j.Name)
	}
	key := make([]byte, protocol.AgentKeySize)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	secrets := c.kube.CoreV1().Secrets(j.Namespace)
	_, err := secrets.Create(ctx, agentKeySecret(j, key), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		var old *corev1.Secret
		if old, err = secrets.Get(ctx, name, metav1.GetOptions{}); err == nil && string(old.Data[agentconfig.KeyJobUIDFile]) != string(j.UID) {
			err = fmt.Errorf("Secret %s/%s holds another Job's key", j.Namespace, name)
		}
	}
	if err != nil {
		return fmt.Errorf("writing the key of agent Job %s: %w", j.Name, err)
	}
	c.keyed.Store(j.UID, true)
	klog.FromContext(ctx).V(2).Info("Wrote the agent key", "job", j.Name, "secret", name)
	return nil
}
