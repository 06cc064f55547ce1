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

// Reasons of a MirrordDBBranch's Ready condition (and status.reason).
const (
	// ReasonBranchSeeding: the branch's pod is starting or copying from the source.
	ReasonBranchSeeding = "Seeding"
	// ReasonBranchReady: the branch answers on its endpoint.
	ReasonBranchReady = "Serving"
	// ReasonBranchCopyFailed: making or seeding the branch failed (the source unreachable, a
	// dump refused, a bad filter); the message has the engine's tool's words.
	ReasonBranchCopyFailed = "CopyFailed"
	// ReasonBranchPodFailed: the branch's pod cannot run (its image, its configuration).
	ReasonBranchPodFailed = "PodFailed"
	// ReasonBranchTimeout: not Ready within the branch's creation timeout.
	ReasonBranchTimeout = "CreationTimeout"
	// ReasonBranchSourceUnknown: the target does not say where its database is (a variable
	// the connection names is not in its container).
	ReasonBranchSourceUnknown = "SourceUnknown"
	// ReasonBranchSyncing: the Primary is copying the branch to the Default cluster, or the
	// Default has not answered for it yet.
	ReasonBranchSyncing = "Syncing"
	// ReasonBranchBadReport: the Default cluster reported a status no branch of its has.
	ReasonBranchBadReport = "BadReport"
	// ReasonAllSynced: every Workload cluster holds a queue registry's current spec.
	ReasonAllSynced = "AllSynced"
	// ReasonBranchExpired: no session used the branch for its TTL; it is being deleted.
	ReasonBranchExpired = "Expired"
)
