// Package agentconfig is what the member controller and the agent agree on: the agent's
// ports and the configuration the controller hands it. It builds on every platform (the
// plugin's own packages use it); the agent itself is Linux only.
package agentconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1/validation"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// The agent's fixed ports on its pod's IP: the session protocol and its health endpoints.
const (
	SessionPort = 7100
	HealthPort  = 7101
)

// ConfigEnv is the environment variable through which the member controller hands the agent
// its Config, as JSON.
const ConfigEnv = "MIRRORD_AGENT_CONFIG"

// Config is everything an agent needs to know, decided by the member controller. It names
// the target only: the sessions an agent serves, and their features, come with each
// connection (protocol.Hello).
type Config struct {
	// TargetNamespace, TargetPod and TargetPodUID identify the pod.
	TargetNamespace string `json:"targetNamespace"`
	TargetPod       string `json:"targetPod"`
	TargetPodUID    string `json:"targetPodUID"`
	// Container and ContainerID identify the target container (ID as in the pod status,
	// "containerd://<id>").
	Container   string `json:"container"`
	ContainerID string `json:"containerID"`
	// RuntimeEndpoint is the node's CRI socket (unix:///run/containerd/containerd.sock), when
	// the installation names one; otherwise the agent asks the runtime that runs itself, then
	// the well-known sockets, then scans /proc.
	RuntimeEndpoint string `json:"runtimeEndpoint,omitempty"`
	// StealBackend is how stolen ports are redirected: one of StealBackends; "" is auto.
	StealBackend string `json:"stealBackend,omitempty"`
	// ProbePorts are the ports of the container's probes: never stolen unless asked for.
	ProbePorts []int32 `json:"probePorts,omitempty"`
	// Targetless: the agent serves a session with no target from its own pod (in the
	// session's namespace, unprivileged): its DNS, outgoing connections, files and
	// environment; no incoming traffic. The target fields are empty.
	Targetless bool `json:"targetless,omitempty"`
	// KeyDir holds the agent key (KeyFile, KeyJobUIDFile), mounted from the Secret the
	// member controller made for this agent's Job; "" is DefaultKeyDir.
	KeyDir string `json:"keyDir,omitempty"`
}

// The agent key: one per agent Job, in a Secret of its own (a fresh name for every Job) that
// only the member controller and the agent's pod read; no Job or Pod spec holds it.
const (
	// DefaultKeyDir is where the agent's pod mounts its key Secret.
	DefaultKeyDir = "/var/run/kubectl-mirrord/agent-key"
	// KeyFile is the Secret's key, and the file in KeyDir.
	KeyFile = "key"
)

// KeyVolume is the agent pod's volume of its key Secret.
const KeyVolume = "agent-key"

// KeySecretOf is the name of the key Secret an agent pod spec mounts ("" if none).
func KeySecretOf(spec corev1.PodSpec) string {
	for _, v := range spec.Volumes {
		if v.Name == KeyVolume && v.Secret != nil {
			return v.Secret.SecretName
		}
	}
	return ""
}

// ReadKey reads the agent key in dir.
func ReadKey(dir string) ([]byte, error) {
	if dir == "" {
		dir = DefaultKeyDir
	}
	key, err := os.ReadFile(path.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("the agent key: %w", err)
	}
	if len(key) != protocol.AgentKeySize {
		return nil, fmt.Errorf("the agent key in %s has %d bytes, not %d", dir, len(key), protocol.AgentKeySize)
	}
	return key, nil
}

// StealBackends are the ways an agent can redirect stolen ports. auto takes nftables (a
// table the kernel removes with the agent) and falls back to iptables where the kernel lacks
// nftables or its owner flag (Linux < 5.12).
var StealBackends = []string{"auto", "nftables", "iptables-nft", "iptables-legacy"}

// ConfigFromEnv reads the Config the member controller set.
func ConfigFromEnv() (Config, error) {
	var c Config
	raw := os.Getenv(ConfigEnv)
	if raw == "" {
		return c, errors.New(ConfigEnv + " is not set: the agent is started by the member controller as a Job, not by hand")
	}
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return c, fmt.Errorf("parsing %s: %w", ConfigEnv, err)
	}
	if !c.Targetless && (c.ContainerID == "" || c.TargetPodUID == "") {
		return c, fmt.Errorf("%s lacks the target container: containerID and targetPodUID are required", ConfigEnv)
	}
	return c, nil
}

// ValidateFeatures checks the features a session asks an agent to serve
// (validation.ValidateFeatures). The member controller fails a session whose features (with
// its policies applied) do not pass, before it joins an agent; the agent checks again at each
// connection's handshake.
func ValidateFeatures(f mirrordv1alpha1.Features) error {
	return validation.ValidateFeatures(&f, field.NewPath("feature")).ToAggregate()
}

// ValidateEnv checks the env feature's patterns (validation.ValidateEnv).
func ValidateEnv(f mirrordv1alpha1.EnvFeature) error {
	return validation.ValidateEnv(&f, field.NewPath("feature", "env")).ToAggregate()
}

// CompileAll compiles the regular expressions of setting key; an error names the setting and
// the expression.
func CompileAll(key string, exprs []string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, e := range exprs {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, fmt.Errorf("%s: invalid regular expression %q: %w", key, e, err)
		}
		out = append(out, re)
	}
	return out, nil
}
