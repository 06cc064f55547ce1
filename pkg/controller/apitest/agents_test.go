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
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/member"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/relay"
)

// runningPod creates pod name in ns on node n1, then says through its status what a kubelet
// would: running, its container started with id, at ip, Ready when ready. There are no
// nodes: the pod exists only as this API object.
func runningPod(t *testing.T, s *Server, pod *corev1.Pod, id, ip string, ready bool) *corev1.Pod {
	t.Helper()
	pod.Spec.NodeName = "n1"
	created, err := s.Kube.CoreV1().Pods(pod.Namespace).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	created.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
	for _, c := range created.Spec.Containers {
		created.Status.ContainerStatuses = append(created.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ContainerID: id, Ready: ready, Started: &ready,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	readiness := corev1.ConditionFalse
	if ready {
		readiness = corev1.ConditionTrue
	}
	created.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: readiness, LastTransitionTime: now}}
	updated, err := s.Kube.CoreV1().Pods(pod.Namespace).UpdateStatus(t.Context(), created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return updated
}

// agentJobs are the agent Jobs of the target pod uid.
func agentJobs(ctx context.Context, s *Server, uid string) ([]batchv1.Job, error) {
	l, err := s.Kube.BatchV1().Jobs("mirrord-system").List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{mirrordv1alpha1.LabelTargetPodUID: uid}).String()})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(l.Items, func(j batchv1.Job) bool { return j.DeletionTimestamp != nil }), nil
}

// TestAgentLifecycle: a session on a running pod gets one agent Job there, with its key in a
// Secret and the pod's probed port in its config; a second session on the same pod shares
// it; the agent's Ready pod makes both sessions Ready; the Job goes with the last session,
// and its key (owned by it) after it. The Job's pods are made by hand, as the Job controller would (there are no
// nodes).
func TestAgentLifecycle(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Install(t, "single-cluster")
	ctx := t.Context()
	if _, err := s.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "agents"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// No controller manager makes default ServiceAccounts here, and pods need one.
	for _, ns := range []string{"agents", "mirrord-system"} {
		if _, err := s.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	target := runningPod(t, s, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "api-1", Namespace: "agents", Labels: map[string]string{"app": "api"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "istio-proxy", Image: "proxy"}, // a mesh sidecar is never the default container
			{Name: "app", Image: "api", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}}},
		}},
	}, "containerd://0123abcd", "10.244.0.7", true)
	relayAddr := runController(t, s)

	pub, sessionKey, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	withKey := session("agents", "Pod", "api-1", "agents")
	withKey.Spec.PublicKey = base64.StdEncoding.EncodeToString(pub)
	first, err := create(t, s, "", withKey)
	if err != nil {
		t.Fatal(err)
	}
	var job batchv1.Job
	waitFor(t, "the agent Job", func(ctx context.Context) error {
		jobs, err := agentJobs(ctx, s, string(target.UID))
		if err != nil || len(jobs) != 1 {
			return fmt.Errorf("%d Jobs (%v)", len(jobs), err)
		}
		job = jobs[0]
		return nil
	})
	var cfg agentconfig.Config
	if err := json.Unmarshal([]byte(job.Spec.Template.Spec.Containers[0].Env[0].Value), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ContainerID != "containerd://0123abcd" || !slices.Equal(cfg.ProbePorts, []int32{8080}) || job.Spec.Template.Spec.NodeName != "n1" {
		t.Errorf("agent config %+v on node %q: want the app container, its probed port and the pod's node", cfg, job.Spec.Template.Spec.NodeName)
	}
	key, err := s.Kube.CoreV1().Secrets("mirrord-system").Get(ctx, member.AgentKeySecretName(&job), metav1.GetOptions{})
	if err != nil || len(key.Data) == 0 {
		t.Fatalf("the agent's key Secret: %v", err)
	}

	second, err := create(t, s, "", session("agents", "Pod", "api-1", "agents"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both sessions' children owning the one Job", func(ctx context.Context) error {
		jobs, err := agentJobs(ctx, s, string(target.UID))
		if err != nil || len(jobs) != 1 || len(jobs[0].OwnerReferences) != 2 {
			return fmt.Errorf("Jobs %v (%v)", jobs, err)
		}
		return nil
	})

	// The Job's pod, as the Job controller and the kubelet would make it.
	podLabels := map[string]string{batchv1.ControllerUidLabel: string(job.UID), batchv1.JobNameLabel: job.Name}
	maps.Copy(podLabels, job.Spec.Template.Labels)
	runningPod(t, s, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: job.Name + "-abcde", Namespace: "mirrord-system", Labels: podLabels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "agent"}}},
	}, "containerd://agent", "127.0.0.1", true) // on loopback, where no agent listens
	for _, sess := range []*mirrordv1alpha1.MirrordSession{first, second} {
		waitFor(t, "session "+sess.Name+" Ready", func(ctx context.Context) error {
			got, err := s.Mirrord.MirrordV1alpha1().MirrordSessions("agents").Get(ctx, sess.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got.Status.Phase != mirrordv1alpha1.SessionReady || got.Status.ClustersReady != "1/1" || len(got.Status.Clusters) != 1 || got.Status.Clusters[0].ReadyAgents != 1 {
				return fmt.Errorf("phase %s, clusters %s %+v", got.Status.Phase, got.Status.ClustersReady, got.Status.Clusters)
			}
			return nil
		})
	}

	// The session's owner at the Primary's relay: its operations are routed to this cluster's
	// own part of the session (no member hop), to the ready agent of the target pod, with
	// that agent's key. The agent is not there: the error says which one was tried.
	direct := &rest.Config{Host: "https://" + relayAddr, TLSClientConfig: rest.TLSClientConfig{Insecure: true}} // the relay's certificate is made up
	conn, err := relay.Dial(ctx, direct, relay.Path)
	if err != nil {
		t.Fatal(err)
	}
	mux, err := protocol.Dial(conn, protocol.Hello{Kind: protocol.HelloSession, Session: "agents/" + first.Name}, sessionKey)
	if err != nil {
		t.Fatalf("the session's owner at the relay: %v", err)
	}
	client := protocol.NewClient(mux)
	if _, err := client.Env(); err == nil || !strings.Contains(err.Error(), "api-1") {
		t.Errorf("env through the relay with no agent listening: %v, want the agent of pod api-1 named", err)
	} else {
		t.Logf("env through the relay: %v", err)
	}
	client.Close()

	if err := s.Mirrord.MirrordV1alpha1().MirrordSessions("agents").Delete(ctx, first.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The garbage collector (not running here) would drop the gone child from the Job's
	// owners; the member keeps the Job while a live session owns it.
	waitFor(t, "the first session gone", func(ctx context.Context) error {
		_, err := s.Mirrord.MirrordV1alpha1().MirrordSessions("agents").Get(ctx, first.Name, metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	})
	if jobs, err := agentJobs(ctx, s, string(target.UID)); err != nil || len(jobs) != 1 || jobs[0].UID != job.UID {
		t.Fatalf("the Job after the first session: %v (%v), want it kept for the second", jobs, err)
	}

	if err := s.Mirrord.MirrordV1alpha1().MirrordSessions("agents").Delete(ctx, second.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Job gone with the last session", func(ctx context.Context) error {
		jobs, err := agentJobs(ctx, s, string(target.UID))
		if err != nil || len(jobs) != 0 {
			return fmt.Errorf("Jobs left: %d (%v)", len(jobs), err)
		}
		return nil
	})
	// Its key goes with it: the Secret is the Job's, for the garbage collector.
	key, err = s.Kube.CoreV1().Secrets("mirrord-system").Get(ctx, key.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(key.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == job.UID }) {
		t.Errorf("the key Secret's owners %+v: want the Job", key.OwnerReferences)
	}
}
