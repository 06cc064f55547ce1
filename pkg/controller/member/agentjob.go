package member

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// AgentOptions are the installation-wide settings of agent Jobs.
type AgentOptions struct {
	// Image runs `kubectl-mirrord agent`; by default the controller's own image.
	Image string
	// ActiveDeadline bounds an agent's life even if everything else fails.
	ActiveDeadline time.Duration
	// RuntimeEndpoint and StealBackend are handed to every agent (agentconfig.Config).
	RuntimeEndpoint string
	StealBackend    string
	// MaxProcs is the agent's GOMAXPROCS; 0 leaves Go's default (the node's CPUs).
	MaxProcs int
}

// DefaultAgentMaxProcs runs each agent's Go code on one CPU at a time, as per-pod proxies do
// (linkerd2-proxy runs one worker by default). An agent relays every request between a few
// goroutines; with more than one P each handoff wakes another thread, which on the rig cost
// more than the work: 0.29 ms of CPU per stolen request with 2 against 0.21 ms with 1, and
// the round trip 0.1 ms shorter, the bulk download no slower. The price, measured once each
// way on the 2-CPU rig: 50 sessions' outgoing requests through one agent at p50 1.25-1.29 s
// against 1.08 s with 2 (the agents' CPU 0.23 cores against 0.27).
const DefaultAgentMaxProcs = 1

// agentEnv is the agent container's environment: its config, and GOMAXPROCS when set.
func agentEnv(config []byte, maxProcs int) []corev1.EnvVar {
	env := []corev1.EnvVar{{Name: agentconfig.ConfigEnv, Value: string(config)}}
	if maxProcs > 0 {
		env = append(env, corev1.EnvVar{Name: "GOMAXPROCS", Value: strconv.Itoa(maxProcs)})
	}
	return env
}

// agentCapabilities are all the agent needs: enter the target's namespaces (SYS_ADMIN), read
// its /proc entries and root (SYS_PTRACE), program nftables/iptables (NET_ADMIN) and capture
// packets (NET_RAW).
var agentCapabilities = []corev1.Capability{"NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE"}

// sidecarOptOut keeps service meshes from injecting a proxy into agent pods.
var sidecarOptOut = map[string]string{
	"sidecar.istio.io/inject":   "false",
	"linkerd.io/inject":         "disabled",
	"kuma.io/sidecar-injection": "disabled",
}

// agentContainer is the agent's container in every agent pod, shared or targetless: its
// config in the environment, its key mounted from the pod's key volume, its ports and
// readiness, and a memory limit; cpuRequest and sc are the pod kind's own.
func agentContainer(opts AgentOptions, config []byte, cpuRequest string, sc *corev1.SecurityContext) corev1.Container {
	return corev1.Container{
		Name:  "agent",
		Image: opts.Image,
		Args:  []string{"agent"},
		Env:   agentEnv(config, opts.MaxProcs),
		// The agent key: a Secret the controller writes before the Job's pod needs it.
		VolumeMounts: []corev1.VolumeMount{{Name: agentconfig.KeyVolume, MountPath: agentconfig.DefaultKeyDir, ReadOnly: true}},
		Ports: []corev1.ContainerPort{
			{Name: "session", ContainerPort: agentconfig.SessionPort},
			{Name: "health", ContainerPort: agentconfig.HealthPort},
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(agentconfig.HealthPort)}},
			PeriodSeconds: 1,
		},
		// The agent's last log lines explain a crash in the pod's status.
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuRequest), corev1.ResourceMemory: resource.MustParse("32Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
		},
		SecurityContext: sc,
	}
}

// target is one resolved target pod.
type targetPod struct {
	Pod         *corev1.Pod
	Container   string
	ContainerID string
	ProbePorts  []int32
}

// constructAgentJob builds the agent Job of one target pod's container, in namespace ns:
// pinned to the pod's node, in the host PID namespace. It names the target only; the
// sessions it serves are its owners (joinAgent), their features come with each connection.
// keySecret names the Secret its key is in.
func constructAgentJob(ns, jobName string, tp targetPod, opts AgentOptions, keySecret string) (*batchv1.Job, error) {
	cfg := agentconfig.Config{
		TargetNamespace: tp.Pod.Namespace,
		TargetPod:       tp.Pod.Name,
		TargetPodUID:    string(tp.Pod.UID),
		Container:       tp.Container,
		ContainerID:     tp.ContainerID,
		ProbePorts:      tp.ProbePorts,
		RuntimeEndpoint: opts.RuntimeEndpoint,
		StealBackend:    opts.StealBackend,
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding agent config: %w", err)
	}
	labels := map[string]string{
		mirrordv1alpha1.LabelComponent:    mirrordv1alpha1.ComponentAgent,
		mirrordv1alpha1.LabelTargetPodUID: string(tp.Pod.UID),
	}
	annotations := map[string]string{
		mirrordv1alpha1.GroupName + "/target-pod": tp.Pod.Namespace + "/" + tp.Pod.Name,
		annotationTargetContainer:                 tp.Container,
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:        jobName,
			Namespace:   ns,
			Labels:      labels,
			Annotations: annotations,
		},
		Spec: batchv1.JobSpec{
			// A crashed agent is replaced a few times; its sessions then show it failing.
			BackoffLimit:            ptr.To[int32](3),
			ActiveDeadlineSeconds:   ptr.To(int64(opts.ActiveDeadline.Seconds())),
			TTLSecondsAfterFinished: ptr.To[int32](60),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: maps.Clone(sidecarOptOut)},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					// nodeName bypasses the scheduler: the agent must run next to the pod, now.
					NodeName:                      tp.Pod.Spec.NodeName,
					HostPID:                       true,
					AutomountServiceAccountToken:  ptr.To(false),
					EnableServiceLinks:            ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					Volumes: []corev1.Volume{{Name: agentconfig.KeyVolume, VolumeSource: corev1.VolumeSource{
						Secret: &corev1.SecretVolumeSource{SecretName: keySecret, DefaultMode: ptr.To[int32](0o400)}}}},
					Containers: []corev1.Container{agentContainer(opts, raw,
						// A pinned pod skips the scheduler, so a node whose CPU is fully requested
						// rejects it (OutOfcpu): ask for the least CPU, like mirrord's agent (1m).
						"1m",
						&corev1.SecurityContext{
							RunAsUser:                ptr.To[int64](0),
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: agentCapabilities},
						})},
				},
			},
		},
	}, nil
}
