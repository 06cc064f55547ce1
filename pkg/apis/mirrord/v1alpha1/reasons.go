package v1alpha1

// Reasons of a MirrordSession's conditions, set by the Primary's controller. Clients (the CLI,
// scripts, dashboards) may match on them; they are part of the API.
const (
	// ReasonInvalidTopology: the Primary's cluster roles are invalid (two Default clusters,
	// say); new sessions fail, running ones are Degraded until an admin fixes them (Ready).
	ReasonInvalidTopology = "InvalidTopology"
	// ReasonProfileNotFollowed: the session names a profile that is missing, or whose
	// adjustments its features do not follow.
	ReasonProfileNotFollowed = "ProfileNotFollowed"
	// ReasonNoMembers: no member cluster is registered (Ready).
	ReasonNoMembers = "NoMemberClusters"
	// ReasonClusterFailed: a member's child session failed; the message says which and why
	// (Ready).
	ReasonClusterFailed = "ClusterFailed"
	// ReasonAllReachable and ReasonClusterUnreachable: whether every member answers
	// (ClustersReachable; an unreachable member also makes the session Degraded, Ready).
	ReasonAllReachable       = "AllReachable"
	ReasonClusterUnreachable = "ClusterUnreachable"
	// ReasonClustersReady: every member's part is ready (Ready).
	ReasonClustersReady = "AllClustersReady"
	// ReasonWaitingForClusters: some members' parts are not ready yet (Ready).
	ReasonWaitingForClusters = "WaitingForClusters"
	// ReasonNotInDefault: the target is not in the Default cluster: the session fails unless
	// it takes only the target's traffic (TargetResolved).
	ReasonNotInDefault = "NotInDefaultCluster"
	// ReasonResolving: no member has said where the target is yet (TargetResolved).
	ReasonResolving = "Resolving"
	// ReasonTerminating: the session is being deleted and its children removed (Ready).
	ReasonTerminating = "Terminating"
)

// Reasons of a MirrordClusterSession's conditions, set by a member's controller.
const (
	// ReasonAgentsReady: every target pod's agent is ready (Ready).
	ReasonAgentsReady = "AgentsReady"
	// ReasonAgentsStarting: some agents are not ready yet (Ready).
	ReasonAgentsStarting = "AgentsStarting"
	// ReasonAgentFailed: an agent's Job gave up; the message says why (Ready).
	ReasonAgentFailed = "AgentFailed"
	// ReasonNothingToIntercept: the target is not in this cluster, which has nothing to do
	// (Ready; the Primary decides whether that is fatal).
	ReasonNothingToIntercept = "NothingToIntercept"
	// ReasonInvalidFeatures: a setting no agent can serve, a bad regular expression say
	// (TargetResolved, Ready).
	ReasonInvalidFeatures = "InvalidFeatures"
	// ReasonContainerNotFound: the named container is not in the target (TargetResolved).
	ReasonContainerNotFound = "ContainerNotFound"
	// ReasonHostNetwork: the target uses the node's network, which cannot be intercepted
	// (TargetResolved).
	ReasonHostNetwork = "HostNetwork"
)
