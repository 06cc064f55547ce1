// Package naming derives the names of the objects the controllers create, so a retried or
// restarted controller always arrives at the same name and never creates a duplicate.
package naming

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// hash returns n hex characters of the SHA-256 of parts.
func hash(n int, parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return hex.EncodeToString(h[:])[:n]
}

// truncate cuts s to n characters without leaving a trailing dash or dot.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.TrimRight(s, "-.")
}

// ClusterSession is the name of a session's child in a member cluster: readable, and unique
// across Primaries and sessions that share a namespace and name over time.
func ClusterSession(primary, parentNamespace, parentName string, parentUID types.UID) string {
	return truncate(parentNamespace+"-"+parentName, 50) + "-" + hash(8, primary, string(parentUID))
}

// AgentJob is the name of an agent Job of one target pod's container, shared by every
// session on it: readable, and new each time (generation is random), as the Job controller
// keys its bookkeeping by name and a Job made again under the name of one deleted a moment
// ago was seen to get the old one's pod and none of its own. It stays within 63 characters
// because the Job controller copies it into a label.
func AgentJob(podName string, podUID types.UID, container, generation string) string {
	return truncate("mirrord-agent-"+podName, 46) + "-" + hash(10, string(podUID), container) + "-" + truncate(generation, 5)
}

// TargetlessAgent is the name of the agent Job of targetless child session childUID: new each
// time, as AgentJob's.
func TargetlessAgent(childUID types.UID, generation string) string {
	return "mirrord-targetless-" + hash(10, string(childUID)) + "-" + truncate(generation, 5)
}

// SessionLease is the Lease, in the Primary controller's namespace, whose renewals are a
// session's heartbeats (written by the relay that checked them, so by a server's clock).
func SessionLease(sessionUID types.UID) string {
	return "kubectl-mirrord-session-" + string(sessionUID)
}

// PrimaryLease is the Lease a Primary renews in each member to say it is alive.
func PrimaryLease(primary string) string {
	return "kubectl-mirrord-primary-" + primary
}

// DBBranch is the name of a database branch's pod and Service: stable for the branch object
// (a restarted controller finds them), and a DNS label (the Service's name is a host name).
func DBBranch(branchUID types.UID) string {
	return "mirrord-db-" + hash(12, string(branchUID))
}

// DBBranchCopy is the name of the copy of a Primary's database branch in the Default cluster
// (in that cluster's own namespace): readable, and unique across Primaries and branches that
// share a namespace and name over time.
func DBBranchCopy(primary, branchNamespace, branchName string, branchUID types.UID) string {
	return truncate("db-"+branchNamespace+"-"+branchName, 50) + "-" + hash(8, primary, string(branchUID))
}

// QueueRegistryCopy is the name of the copy of a Primary's queue registry in a Workload
// cluster (in that cluster's own namespace), unique as DBBranchCopy is.
func QueueRegistryCopy(primary, registryNamespace, registryName string, registryUID types.UID) string {
	return truncate("queues-"+registryNamespace+"-"+registryName, 50) + "-" + hash(8, primary, string(registryUID))
}
