package member

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// AgentKeySecret holds the key from which each agent's session token is derived, so the
// controller that relays to an agent can compute its token without storing one per session.
const AgentKeySecret = "mirrord-agent-key"

// LoadAgentKey reads the agent key from ns, creating it the first time.
func LoadAgentKey(ctx context.Context, kube kubernetes.Interface, ns string) ([]byte, error) {
	for range 2 {
		s, err := kube.CoreV1().Secrets(ns).Get(ctx, AgentKeySecret, metav1.GetOptions{})
		if err == nil {
			if k := s.Data["key"]; len(k) >= 32 {
				return k, nil
			}
			return nil, fmt.Errorf("Secret %s/%s has no 32-byte key: delete it and the controller makes a new one", ns, AgentKeySecret)
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading the agent key: %w", err)
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		_, err = kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: AgentKeySecret},
			Data:       map[string][]byte{"key": key},
		}, metav1.CreateOptions{})
		if err == nil {
			return key, nil
		}
		if !apierrors.IsAlreadyExists(err) { // another replica made it first: read that one
			return nil, fmt.Errorf("creating the agent key: %w", err)
		}
	}
	return nil, fmt.Errorf("the agent key %s/%s could not be read or created", ns, AgentKeySecret)
}

// AgentToken is the session token of the agent run by Job jobName.
func AgentToken(key []byte, jobName string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(jobName))
	return hex.EncodeToString(m.Sum(nil))
}
