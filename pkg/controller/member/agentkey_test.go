package member

import (
	"bytes"
	"encoding/json"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
)

// TestAgentJobHoldsNoSecret: the agent Job names its key Secret and holds nothing that
// authenticates; the Secret holds the key alone, owned first by the session that makes the
// Job.
func TestAgentJobHoldsNoSecret(t *testing.T) {
	tp := targetPod{
		Pod:         &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "api-1", Namespace: "shop", UID: "pod-uid"}, Spec: corev1.PodSpec{NodeName: "n1"}},
		Container:   "app",
		ContainerID: "containerd://abc",
	}
	job, err := constructAgentJob("mirrord-system", "mirrord-agent-api-1-abc", tp, AgentOptions{Image: "img"}, "key-abcde")
	if err != nil {
		t.Fatal(err)
	}
	job.UID = "job-uid"
	key := bytes.Repeat([]byte{0xAB}, 32)
	child := metav1.OwnerReference{Kind: "MirrordClusterSession", Name: "child", UID: "child-uid"}
	secret := agentKeySecret(job.Namespace, AgentKeySecretName(job), child, key)

	raw, _ := json.Marshal(job)
	if bytes.Contains(raw, key) || bytes.Contains(raw, []byte("token")) {
		t.Errorf("the Job holds a credential: %s", raw)
	}
	spec := job.Spec.Template.Spec
	if len(spec.Volumes) != 1 || spec.Volumes[0].Secret == nil || spec.Volumes[0].Secret.SecretName != "key-abcde" || AgentKeySecretName(job) != "key-abcde" {
		t.Errorf("volumes %+v: want the key Secret", spec.Volumes)
	}
	c := spec.Containers[0]
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != agentconfig.DefaultKeyDir || !c.VolumeMounts[0].ReadOnly {
		t.Errorf("mounts %+v", c.VolumeMounts)
	}
	for _, e := range c.Env {
		if e.Name != agentconfig.ConfigEnv {
			t.Errorf("the agent's env has %s", e.Name)
		}
	}

	if secret.Name != "key-abcde" || secret.Namespace != job.Namespace {
		t.Errorf("secret %s/%s for Job %s/%s", secret.Namespace, secret.Name, job.Namespace, job.Name)
	}
	if o := secret.OwnerReferences; len(o) != 1 || o[0].UID != "child-uid" {
		t.Errorf("owners %+v: want the session that makes the Job", o)
	}
	if r := jobRef(job); r.UID != "job-uid" || r.Kind != "Job" || r.APIVersion != batchv1.SchemeGroupVersion.String() || *r.Controller {
		t.Errorf("the Job's reference %+v", r)
	}
	if !bytes.Equal(secret.Data[agentconfig.KeyFile], key) || len(secret.Data) != 1 {
		t.Errorf("data %v", secret.Data)
	}
}
