package member

import (
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// TestAgentStatusIgnoresAnEarlierJobsPods: a pod's agent Job gets the same name again after
// its last session ended; the old Job's pod, still running for a moment, is not the new
// Job's agent (a session was once Ready on it, then found no agent).
func TestAgentStatusIgnoresAnEarlierJobsPods(t *testing.T) {
	pods := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	old := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-old", Namespace: "mirrord-system", Labels: map[string]string{
			batchv1.JobNameLabel: "mirrord-agent-api-x", batchv1.ControllerUidLabel: "old-uid"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.9",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	if err := pods.Add(old); err != nil {
		t.Fatal(err)
	}
	c := &Controller{listers: listers{pods: corelisters.NewPodLister(pods)}}
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "mirrord-agent-api-x", Namespace: "mirrord-system", UID: "new-uid"}}
	tp := targetPod{Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "api"}}}
	if a := c.agentReport(job, tp).agent; a.Ready || a.Address != "" {
		t.Errorf("the new Job's agent is %+v: the old Job's pod was taken for it", a)
	}
	job.UID = "old-uid"
	if a := c.agentReport(job, tp).agent; !a.Ready || a.Address != "10.0.0.9:7100" {
		t.Errorf("the Job's own running pod: %+v", a)
	}
}
