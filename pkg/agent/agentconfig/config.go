// Package agentconfig is what the member controller and the agent agree on: the agent's
// ports and the configuration the controller hands it. It builds on every platform (the
// plugin's own packages use it); the agent itself is Linux only.
package agentconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
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
	// Token must be presented by whoever connects to the agent's session port (the member
	// controller derives it from its agent key and the Job's name).
	Token string `json:"token,omitempty"`
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
	if c.ContainerID == "" || c.TargetPodUID == "" {
		return c, fmt.Errorf("%s lacks the target container: containerID and targetPodUID are required", ConfigEnv)
	}
	if c.Token == "" {
		return c, fmt.Errorf("%s lacks the session token: the agent serves only whoever holds it", ConfigEnv)
	}
	return c, nil
}
