package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// Versions of what the rig runs. The Kubernetes and etcd versions are pinned by the tools
// modules under tools/; these strings are only reported and embedded in the binaries.
const (
	kubernetesVersion = "v1.36.3"
	corednsVersion    = "v1.15.0"
)

// The network plan. Every cluster is one node whose control plane, containerd, kubelet
// and kube-proxy run in the node's own network namespace, so each cluster has its own
// iptables, its own Services and DNS, and the same ports in every cluster. The namespaces
// hang off one bridge on the host; nothing is routed off the machine (the host does not
// forward, and the namespaces have no default route).
const (
	bridgeName    = "mrdrig0"
	bridgeIP      = "172.30.0.1"
	bridgePrefix  = 24
	serviceCIDR   = "10.96.0.0/16"
	kubernetesSvc = "10.96.0.1"
	clusterDNSIP  = "10.96.0.10"
	clusterDomain = "cluster.local"
	// cgroupParent is the rig's own cgroup in every v1 hierarchy: every rig process and
	// pod lives under it, so teardown can find them all even if the rig was killed.
	cgroupParent = "mirrord-rig"
	netnsPrefix  = "mrdrig-"
	apiPort      = 6443
)

// Image references the rig imports into every node. imagePullPolicy must be Never.
const (
	pauseImage    = "mirrord.local/pause:rig"
	echoImage     = "mirrord.local/echo:rig"
	corednsImage  = "mirrord.local/coredns:rig"
	nginxImage    = "mirrord.local/nginx:rig"
	postgresImage = "mirrord.local/postgres:rig"
	mariadbImage  = "mirrord.local/mariadb:rig"
)

// Cluster is one rig cluster: a control plane and one node.
type Cluster struct {
	Index int
	Name  string // c1, c2, ...
	Node  string // c1-node
	NetNS string // mrdrig-c1
	// NodeIP is the node's address on the rig bridge; the API server listens on it.
	NodeIP string
	// PodCIDR is the node's pod subnet; ClusterCIDR the cluster's.
	PodCIDR, ClusterCIDR string
	Dir                  string
}

func newCluster(stateDir string, i int) Cluster {
	name := fmt.Sprintf("c%d", i)
	return Cluster{
		Index:       i,
		Name:        name,
		Node:        name + "-node",
		NetNS:       netnsPrefix + name,
		NodeIP:      fmt.Sprintf("172.30.0.%d", 10+i),
		PodCIDR:     fmt.Sprintf("10.%d.0.0/20", 240+i),
		ClusterCIDR: fmt.Sprintf("10.%d.0.0/16", 240+i),
		Dir:         filepath.Join(stateDir, name),
	}
}

// APIServer is the cluster's API server URL, reachable from the host and every pod.
func (c Cluster) APIServer() string { return fmt.Sprintf("https://%s:%d", c.NodeIP, apiPort) }

func (c Cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.Dir}, elem...)...)
}

// Cgroup is the cluster's cgroup below cgroupParent, e.g. "mirrord-rig/c1".
func (c Cluster) Cgroup() string { return cgroupParent + "/" + c.Name }

// Paths of a rig: where state lives (removed by down) and where builds are cached (kept).
type Paths struct {
	Repo  string
	State string
	Cache string
}

func defaultPaths() (Paths, error) {
	repo, err := repoRoot()
	if err != nil {
		return Paths{}, err
	}
	state := os.Getenv("MIRRORD_RIG_STATE")
	if state == "" {
		state = "/var/lib/mirrord-rig"
	}
	cache := os.Getenv("MIRRORD_RIG_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return Paths{}, err
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "kubectl-mirrord")
	}
	return Paths{Repo: repo, State: state, Cache: cache}, nil
}

// KubeconfigDir is where the rig writes one kubeconfig per cluster and a merged one.
func (p Paths) KubeconfigDir() string { return filepath.Join(p.State, "kubeconfig") }

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "test", "rig", "tools")); err == nil {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("run the rig from inside the kubectl-mirrord repository (no test/rig/tools above %s)", dir)
		}
	}
}
