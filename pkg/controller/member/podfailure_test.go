package member

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestPodFailure(t *testing.T) {
	long := strings.Repeat("x", 600) + "no container named app"
	for _, tc := range []struct {
		name string
		pod  corev1.PodStatus
		want string
	}{
		{"rejected by the kubelet", corev1.PodStatus{Phase: corev1.PodFailed, Reason: "OutOfcpu", Message: "Node didn't have enough resource: cpu"},
			"OutOfcpu: Node didn't have enough resource: cpu"},
		{"agent exited", corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", Message: "agent: target is on the host network\n"}}}}},
			"exit code 1 (Error): agent: target is on the host network"},
		{"long message keeps its end", corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", Message: long}}}}},
			"exit code 2 (Error): ..." + long[len(long)-512:]},
		{"running", corev1.PodStatus{Phase: corev1.PodRunning}, ""},
	} {
		if got := podFailure(&corev1.Pod{Status: tc.pod}); got != tc.want {
			t.Errorf("%s: podFailure = %q, want %q", tc.name, got, tc.want)
		}
	}
}
