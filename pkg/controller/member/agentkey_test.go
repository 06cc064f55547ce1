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

// TestAgentJobHoldsNoSecret: the agent Job names its key Secret and its own UID's source,
// and nothing that authenticates; the Secret is the Job's, named after it, and names its UID.
func TestAgentJobHoldsNoSecret(t *testing.T) {
	tp := targetPod{
		Pod:         &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "api-1", Namespace: "shop", UID: "pod-uid"}, Spec: corev1.PodSpec{NodeName: "n1"}},
		Container:   "app",
		ContainerID: "containerd://abc",
	}
	job, err := constructAgentJob("mirrord-system", tp, AgentOptions{Image: "img"}, "key-abcde")
	if err != nil {
		t.Fatal(err)
	}
	job.UID = "job-uid"
	key := bytes.Repeat([]byte{0xAB}, 32)
	secret := agentKeySecret(job, key)

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
	var uidEnv *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == agentconfig.JobUIDEnv {
			uidEnv = &c.Env[i]
		}
	}
	if uidEnv == nil || uidEnv.ValueFrom == nil || uidEnv.ValueFrom.FieldRef.FieldPath != "metadata.labels['batch.kubernetes.io/controller-uid']" {
		t.Errorf("the agent's Job UID: %+v", uidEnv)
	}

	if secret.Name != "key-abcde" || secret.Namespace != job.Namespace {
		t.Errorf("secret %s/%s for Job %s/%s", secret.Namespace, secret.Name, job.Namespace, job.Name)
	}
	if o := secret.OwnerReferences; len(o) != 1 || o[0].UID != "job-uid" || o[0].Kind != "Job" || o[0].APIVersion != batchv1.SchemeGroupVersion.String() {
		t.Errorf("owners %+v: want the Job", o)
	}
	if !bytes.Equal(secret.Data[agentconfig.KeyFile], key) || string(secret.Data[agentconfig.KeyJobUIDFile]) != "job-uid" {
		t.Errorf("data %v", secret.Data)
	}
}
