/*
Copyright The kubectl-mirrord Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package apitest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/relay"
)

// targetlessJobs are the targetless agent Jobs in namespace ns.
func targetlessJobs(ctx context.Context, s *Server, ns string) ([]batchv1.Job, error) {
	l, err := s.Kube.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{
		LabelSelector: mirrordv1alpha1.LabelComponent + "=" + mirrordv1alpha1.ComponentTargetlessAgent})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(l.Items, func(j batchv1.Job) bool { return j.DeletionTimestamp != nil }), nil
}

// TestTargetlessLifecycle: a targetless session gets an agent Job of its own in the session's
// namespace (not the controller's), with its key there (owned by the Job) and a copy for the
// relays in the controller's namespace; its Ready pod makes the session Ready; the relay
// routes the session's operations to it with that key; the Job goes with the session.
func TestTargetlessLifecycle(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Install(t, "single-cluster")
	ctx := t.Context()
	for _, ns := range []string{"tl", "mirrord-system"} {
		if _, err := s.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		if _, err := s.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	relayAddr := runController(t, s)

	pub, sessionKey, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sess := session("tl", "Targetless", "", "tl")
	sess.Spec.PublicKey = base64.StdEncoding.EncodeToString(pub)
	created, err := create(t, s, "", sess)
	if err != nil {
		t.Fatal(err)
	}
	var job batchv1.Job
	waitFor(t, "the targetless agent Job in the session's namespace", func(ctx context.Context) error {
		jobs, err := targetlessJobs(ctx, s, "tl")
		if err != nil || len(jobs) != 1 {
			return fmt.Errorf("%d Jobs (%v)", len(jobs), err)
		}
		job = jobs[0]
		return nil
	})
	if spec := job.Spec.Template.Spec; spec.HostPID || spec.NodeName != "" || spec.Containers[0].SecurityContext.Capabilities.Add != nil {
		t.Errorf("the targetless agent is privileged or pinned: hostPID %v, node %q, capabilities %v", spec.HostPID, spec.NodeName, spec.Containers[0].SecurityContext.Capabilities)
	}
	var mounted, copied *corev1.Secret
	waitFor(t, "its key, where its pod mounts it and where the relays read it", func(ctx context.Context) error {
		var err error
		if mounted, err = s.Kube.CoreV1().Secrets("tl").Get(ctx, agentconfig.KeySecretOf(job.Spec.Template.Spec), metav1.GetOptions{}); err != nil {
			return err
		}
		copied, err = s.Kube.CoreV1().Secrets("mirrord-system").Get(ctx, job.Name, metav1.GetOptions{})
		return err
	})
	if !bytes.Equal(mounted.Data[agentconfig.KeyFile], copied.Data[agentconfig.KeyFile]) || len(mounted.Data[agentconfig.KeyFile]) != protocol.AgentKeySize {
		t.Error("the mounted key and the relays' copy differ")
	}
	if len(mounted.OwnerReferences) != 1 || mounted.OwnerReferences[0].UID != job.UID {
		t.Errorf("the mounted key's owners %+v: want the Job", mounted.OwnerReferences)
	}
	if len(copied.OwnerReferences) != 1 || copied.OwnerReferences[0].Kind != "MirrordClusterSession" {
		t.Errorf("the relays' copy's owners %+v: want the child session", copied.OwnerReferences)
	}

	// The Job's pod, as the Job controller and the kubelet would make it.
	podLabels := map[string]string{batchv1.ControllerUidLabel: string(job.UID), batchv1.JobNameLabel: job.Name}
	maps.Copy(podLabels, job.Spec.Template.Labels)
	pod := runningPod(t, s, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: job.Name + "-abcde", Namespace: "tl", Labels: podLabels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "agent"}}},
	}, "containerd://agent", "127.0.0.1", true) // on loopback, where no agent listens
	waitFor(t, "the session Ready", func(ctx context.Context) error {
		got, err := s.Mirrord.MirrordV1alpha1().MirrordSessions("tl").Get(ctx, created.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.Phase != mirrordv1alpha1.SessionReady || len(got.Status.Clusters) != 1 || got.Status.Clusters[0].ReadyAgents != 1 {
			return fmt.Errorf("phase %s, clusters %+v", got.Status.Phase, got.Status.Clusters)
		}
		return nil
	})

	// The relay reads the key's copy (not the Job's namespace) and dials the agent's pod.
	direct := &rest.Config{Host: "https://" + relayAddr, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	conn, err := relay.Dial(ctx, direct, relay.Path)
	if err != nil {
		t.Fatal(err)
	}
	mux, err := protocol.Dial(conn, protocol.Hello{Kind: protocol.HelloSession, Session: "tl/" + created.Name}, sessionKey)
	if err != nil {
		t.Fatalf("the session's owner at the relay: %v", err)
	}
	client := protocol.NewClient(mux)
	if _, err := client.Env(); err == nil || !strings.Contains(err.Error(), pod.Name) || strings.Contains(err.Error(), "key") {
		t.Errorf("env through the relay with no agent listening: %v, want the dial to agent pod %s refused (its key found)", err, pod.Name)
	} else {
		t.Logf("env through the relay: %v", err)
	}
	client.Close()

	if err := s.Mirrord.MirrordV1alpha1().MirrordSessions("tl").Delete(ctx, created.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the targetless agent Job gone with its session", func(ctx context.Context) error {
		jobs, err := targetlessJobs(ctx, s, "tl")
		if err != nil || len(jobs) != 0 {
			return fmt.Errorf("Jobs left: %d (%v)", len(jobs), err)
		}
		return nil
	})
}

// TestTargetlessSweep: a targetless agent Job whose session ended while no controller ran
// (a kill -9, say) is deleted when the Default's controller starts; one whose child lives
// is kept.
func TestTargetlessSweep(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Install(t, "single-cluster")
	ctx := t.Context()
	if _, err := s.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tl"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	orphan := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "mirrord-targetless-left", Namespace: "tl", Labels: map[string]string{
			mirrordv1alpha1.LabelComponent: mirrordv1alpha1.ComponentTargetlessAgent,
			mirrordv1alpha1.LabelChildName: "tl-gone-1a2b3c4d", mirrordv1alpha1.LabelChildUID: "gone",
		}},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "agent", Image: "agent"}}}}},
	}
	if _, err := s.Kube.BatchV1().Jobs("tl").Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	unrelated := orphan.DeepCopy()
	unrelated.Name, unrelated.Labels = "someone-elses", map[string]string{"app": "batch"}
	if _, err := s.Kube.BatchV1().Jobs("tl").Create(ctx, unrelated, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	runController(t, s)
	waitFor(t, "the left targetless agent Job deleted", func(ctx context.Context) error {
		jobs, err := targetlessJobs(ctx, s, "tl")
		if err != nil || len(jobs) != 0 {
			return fmt.Errorf("%d left (%v)", len(jobs), err)
		}
		return nil
	})
	if _, err := s.Kube.BatchV1().Jobs("tl").Get(ctx, unrelated.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("a Job that is not an agent's: %v, want it untouched", err)
	}
}
