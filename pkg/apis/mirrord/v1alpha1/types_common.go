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

package v1alpha1

// TargetKind is the kind of workload a session targets.
// +kubebuilder:validation:Enum=Pod;Deployment;StatefulSet;ReplicaSet;DaemonSet;Job;CronJob;Service;Rollout;Labels;Targetless
type TargetKind string

// The workload kinds a session can target.
const (
	TargetKindPod         TargetKind = "Pod"
	TargetKindDeployment  TargetKind = "Deployment"
	TargetKindStatefulSet TargetKind = "StatefulSet"
	TargetKindReplicaSet  TargetKind = "ReplicaSet"
	TargetKindDaemonSet   TargetKind = "DaemonSet"
	TargetKindJob         TargetKind = "Job"
	// TargetKindCronJob targets the pods of the cron job's newest Job.
	TargetKindCronJob TargetKind = "CronJob"
	// TargetKindService targets the pods the Service selects.
	TargetKindService TargetKind = "Service"
	// TargetKindRollout is an Argo Rollout (argoproj.io), where its CRD is installed.
	TargetKindRollout TargetKind = "Rollout"
	// TargetKindLabels targets every pod of the namespace with all of the target's labels
	// (mirrord's `target: {labels: {...}}`).
	TargetKindLabels TargetKind = "Labels"
	// TargetKindTargetless is a session without a target (mirrord's `targetless`): an agent
	// of its own, in the session's namespace of the Default cluster, answers its DNS,
	// outgoing traffic, files and environment; no incoming traffic reaches it.
	TargetKindTargetless TargetKind = "Targetless"
)

// Target names the workload whose pods a session runs in the context of. The same
// namespace and name are looked up in every workload cluster.
// +kubebuilder:validation:XValidation:rule="self.kind == 'Targetless' || self.kind == 'Labels' ? size(self.name) == 0 : size(self.name) > 0",message="name is required, except for Targetless and Labels targets, which have none"
// +kubebuilder:validation:XValidation:rule="self.kind == 'Labels' ? has(self.labels) && size(self.labels) > 0 : !has(self.labels) || size(self.labels) == 0",message="labels are required for a Labels target, and only there"
type Target struct {
	// kind of the workload.
	// +required
	Kind TargetKind `json:"kind"`
	// name of the workload; empty for a Targetless session.
	// +required
	Name string `json:"name"`
	// namespace of the workload in the member clusters.
	// +required
	// +kubebuilder:validation:MinLength=1
	Namespace string `json:"namespace"`
	// labels select the pods of a Labels target: every pod with all of them.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Labels map[string]string `json:"labels,omitempty"`
	// container in the target's pods; empty means the first container.
	// +optional
	Container string `json:"container,omitempty"`
}

// VerbMirrord is the RBAC verb that lets a user run sessions on a target workload: the
// creating user needs it on the target's resource and name in the target's namespace
// (`kubectl create role dev-api --verb=mirrord --resource=deployments --resource-name=api`).
// The aggregated mirrord-user ClusterRole grants it on every workload of a namespace.
const VerbMirrord = "mirrord"

// GroupResource is the API group and resource of a target kind, as RBAC names them; ok is
// false for a kind this version does not know.
func (k TargetKind) GroupResource() (group, resource string, ok bool) {
	switch k {
	case TargetKindPod:
		return "", "pods", true
	case TargetKindDeployment:
		return "apps", "deployments", true
	case TargetKindStatefulSet:
		return "apps", "statefulsets", true
	case TargetKindReplicaSet:
		return "apps", "replicasets", true
	case TargetKindDaemonSet:
		return "apps", "daemonsets", true
	case TargetKindJob:
		return "batch", "jobs", true
	case TargetKindCronJob:
		return "batch", "cronjobs", true
	case TargetKindService:
		return "", "services", true
	case TargetKindRollout:
		return "argoproj.io", "rollouts", true
	case TargetKindLabels:
		// Every pod the labels select: the verb on pods, all of the namespace's.
		return "", "pods", true
	case TargetKindTargetless:
		// No such resource exists: RBAC names it only to grant targetless sessions.
		return GroupName, ResourceTargetless, true
	}
	return "", "", false
}

// ResourceTargetless is the resource RBAC grants targetless sessions with: the mirrord verb
// on it in a namespace lets its holder run sessions with no target there
// (`kubectl create role dev -n shop --verb=mirrord --resource=targetless.kubectl-mirrord.io`).
const ResourceTargetless = "targetless"

// IsTargetless says whether t is a session without a target.
func (t Target) IsTargetless() bool { return t.Kind == TargetKindTargetless }

// ClusterRole is a part a member cluster plays in sessions.
// +kubebuilder:validation:Enum=Workload;Default
type ClusterRole string

const (
	// ClusterRoleWorkload clusters run target pods: their agents mirror and steal incoming traffic.
	ClusterRoleWorkload ClusterRole = "Workload"
	// ClusterRoleDefault is the one cluster that answers stateful operations: env, files, DNS, outgoing.
	ClusterRoleDefault ClusterRole = "Default"
)

// Features says what a session takes from its target. The field names follow mirrord's
// configuration file (feature.env, feature.fs, feature.network).
type Features struct {
	// profile names the profile these features follow: a MirrordClusterProfile's NAME, or
	// NAMESPACE/NAME of a MirrordProfile in the session's namespace. The Primary refuses a
	// session whose features do not follow it; policies may require one.
	// +optional
	// +kubebuilder:validation:MaxLength=317
	Profile string `json:"profile,omitempty"`
	// env selects the target's environment variables the local process gets.
	// +optional
	Env EnvFeature `json:"env,omitempty"`
	// fs selects how the local process sees the target's files.
	// +optional
	FS FSFeature `json:"fs,omitempty"`
	// network selects incoming, outgoing and DNS behaviour.
	// +optional
	Network NetworkFeature `json:"network,omitempty"`
	// dbBranches name the MirrordDBBranches of the session's namespace its command uses: each
	// stays while a session names it, and its TTL counts from the last one's end.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	DBBranches []string `json:"dbBranches,omitempty"`
	// splitQueues are the queues of the target's MirrordWorkloadQueueRegistry whose matching
	// messages the session's command gets instead of the deployed consumer
	// (feature.split_queues).
	// +optional
	// +listType=map
	// +listMapKey=queueId
	// +kubebuilder:validation:MaxItems=16
	SplitQueues []QueueSplitRequest `json:"splitQueues,omitempty"`
}

// QueueSplitRequest is a session's claim on one queue of its target's queue registry: the
// messages whose attributes all match the filter.
type QueueSplitRequest struct {
	// queueId is the queue's id in the registry.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	QueueID string `json:"queueId"`
	// messageFilter maps message attribute names to the regexes (mirrord's syntax) their
	// values must match; a message without one of them is not the session's.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=10
	MessageFilter map[string]string `json:"messageFilter"`
}

// SessionQueueStatus is the state of one of a session's split queues in a cluster.
type SessionQueueStatus struct {
	// queueId is the queue's id in the registry.
	QueueID string `json:"queueId"`
	// variable is the consumer's environment variable that names the queue.
	// +optional
	Variable string `json:"variable,omitempty"`
	// value is what the session's command gets in variable: its own queue's name, or URL
	// when the consumer's value is a URL. Set by the Default cluster, which makes the queue.
	// +optional
	Value string `json:"value,omitempty"`
	// ready: the queue exists, this cluster's consumer reads the fallback queue and its
	// forwarder delivers the session's messages.
	Ready bool `json:"ready"`
	// message says what the split waits for, or why it failed.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// EnvFeature selects environment variables. include and exclude are glob patterns (*, ?)
// and are mutually exclusive.
type EnvFeature struct {
	// disabled turns remote environment off.
	// +optional
	Disabled bool `json:"disabled,omitempty"`
	// include lists the only variables taken from the target.
	// +optional
	// +listType=atomic
	Include []string `json:"include,omitempty"`
	// exclude lists variables never taken from the target.
	// +optional
	// +listType=atomic
	Exclude []string `json:"exclude,omitempty"`
	// override sets variables regardless of the target's values.
	// +optional
	Override map[string]string `json:"override,omitempty"`
	// mapping replaces the value of every variable whose name matches a regular expression
	// (the key) with the value, as mirrord's feature.env.mapping: applied on the developer's
	// machine, after an env file and before override; the first pattern in sorted order wins.
	// +optional
	Mapping map[string]string `json:"mapping,omitempty"`
	// unset removes variables from the local process's environment, whatever their case
	// (AWS_PROFILE also removes Aws_Profile), the target's and the developer's alike.
	// +optional
	// +listType=atomic
	Unset []string `json:"unset,omitempty"`
}

// FSMode is how file operations of the local process are served.
// +kubebuilder:validation:Enum=local;read;write
type FSMode string

// The file system modes, as in mirrord's feature.fs.mode.
const (
	FSModeLocal FSMode = "local"
	FSModeRead  FSMode = "read"
	FSModeWrite FSMode = "write"
)

// FSFeature selects file access. The path lists are regular expressions matched against
// absolute paths and override mode for the paths they match.
type FSFeature struct {
	// mode for paths no override matches. Defaults to read.
	// +optional
	// +kubebuilder:default=read
	Mode FSMode `json:"mode,omitempty"`
	// readOnly paths are read from the target even when mode is local.
	// +optional
	// +listType=atomic
	ReadOnly []string `json:"readOnly,omitempty"`
	// readWrite paths are read and written in the target.
	// +optional
	// +listType=atomic
	ReadWrite []string `json:"readWrite,omitempty"`
	// local paths are always served by the developer's machine.
	// +optional
	// +listType=atomic
	Local []string `json:"local,omitempty"`
	// notFound paths look absent to the local process (set by policies).
	// +optional
	// +listType=atomic
	NotFound []string `json:"notFound,omitempty"`
	// policyReadOnly paths are set by policies, not users: they are never written, whatever
	// mode and the overrides above say.
	// +optional
	// +listType=atomic
	PolicyReadOnly []string `json:"policyReadOnly,omitempty"`
	// policyLocal paths are set by policies, not users: they are never read from the target,
	// whatever mode and the overrides above say.
	// +optional
	// +listType=atomic
	PolicyLocal []string `json:"policyLocal,omitempty"`
}

// ReadsRemotely reports whether any file may be served from the target: a mode other than
// local (the default is read), or a readOnly or readWrite override.
func (f FSFeature) ReadsRemotely() bool {
	return f.Mode != FSModeLocal || len(f.ReadOnly) > 0 || len(f.ReadWrite) > 0
}

// IncomingMode is what happens to traffic arriving at the target's ports.
// +kubebuilder:validation:Enum=mirror;steal;off
type IncomingMode string

// The incoming traffic modes, as in mirrord's feature.network.incoming.mode.
const (
	IncomingModeMirror IncomingMode = "mirror"
	IncomingModeSteal  IncomingMode = "steal"
	IncomingModeOff    IncomingMode = "off"
)

// NetworkFeature selects network behaviour.
type NetworkFeature struct {
	// incoming traffic of the target.
	// +optional
	Incoming IncomingFeature `json:"incoming,omitempty"`
	// outgoing connections of the local process.
	// +optional
	Outgoing OutgoingFeature `json:"outgoing,omitempty"`
	// dns resolution of the local process.
	// +optional
	DNS DNSFeature `json:"dns,omitempty"`
}

// IncomingFeature selects how incoming traffic reaches the local process.
type IncomingFeature struct {
	// mode of interception. Defaults to mirror.
	// +optional
	// +kubebuilder:default=mirror
	Mode IncomingMode `json:"mode,omitempty"`
	// httpFilter limits stealing to the HTTP requests it matches; the rest go to the target.
	// +optional
	HTTPFilter *HTTPFilter `json:"httpFilter,omitempty"`
	// ports limits interception to these target ports; empty means every port the target listens on.
	// +optional
	// +listType=set
	Ports []int32 `json:"ports,omitempty"`
	// ignorePorts are never intercepted.
	// +optional
	// +listType=set
	IgnorePorts []int32 `json:"ignorePorts,omitempty"`
	// portMapping maps a target port to the local port the process listens on.
	// +optional
	// +listType=map
	// +listMapKey=remote
	PortMapping []PortMapping `json:"portMapping,omitempty"`
	// stealProbePorts steals the kubelet's probes too. Without it, a steal of a port the pod's
	// liveness, readiness or startup probes use leaves the connections from the node's own
	// addresses (the probes) to the target, so the pod stays ready whatever the local process
	// answers.
	// +optional
	StealProbePorts bool `json:"stealProbePorts,omitempty"`
}

// HTTPFilter matches HTTP requests, as mirrord's http_filter: a request matches when every
// set field matches, every allOf term matches, and (when anyOf is set) one anyOf term
// matches. Regular expressions are mirrord's (fancy-regex: look-around included);
// header and path ones ignore case, as mirrord's do.
type HTTPFilter struct {
	// header matches one "Name: value" line of the request's headers.
	// +optional
	Header string `json:"header,omitempty"`
	// headerJQ is a jq expression run on each "Name: value" line (a JSON string); it matches
	// when it yields true for one.
	// +optional
	HeaderJQ string `json:"headerJQ,omitempty"`
	// path matches the request's path, or its path with the query.
	// +optional
	Path string `json:"path,omitempty"`
	// method matches the request's method.
	// +optional
	Method string `json:"method,omitempty"`
	// body matches the request's JSON body.
	// +optional
	Body *JSONBodyFilter `json:"body,omitempty"`
	// allOf are terms that must all match.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	AllOf []HTTPFilterTerm `json:"allOf,omitempty"`
	// anyOf are terms of which one must match.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	AnyOf []HTTPFilterTerm `json:"anyOf,omitempty"`
	// requiredHeaders are set by policies (requiredHeaderFilter), not by users: each must
	// also match one "Name: value" line, so a steal only ever takes requests its policies let
	// it take, whatever the rest says.
	// +optional
	// +listType=atomic
	RequiredHeaders []string `json:"requiredHeaders,omitempty"`
}

// HTTPFilterTerm is one test of a request; in allOf and anyOf, exactly one field is set.
// +kubebuilder:validation:XValidation:rule="[has(self.header), has(self.headerJQ), has(self.path), has(self.method), has(self.body)].filter(x, x).size() == 1",message="each term sets exactly one of header, headerJQ, path, method, body"
type HTTPFilterTerm struct {
	// header matches one "Name: value" line of the request's headers.
	// +optional
	Header string `json:"header,omitempty"`
	// headerJQ is a jq expression run on each "Name: value" line (a JSON string); it matches
	// when it yields true for one.
	// +optional
	HeaderJQ string `json:"headerJQ,omitempty"`
	// path matches the request's path, or its path with the query.
	// +optional
	Path string `json:"path,omitempty"`
	// method matches the request's method.
	// +optional
	Method string `json:"method,omitempty"`
	// body matches the request's JSON body.
	// +optional
	Body *JSONBodyFilter `json:"body,omitempty"`
}

// JSONBodyFilter matches a request whose body is JSON and in which the query finds a value
// the regular expression matches (values other than strings are matched as JSON text).
type JSONBodyFilter struct {
	// query is a JSONPath (RFC 9535) query; typeof(@) gives a node's JSON type.
	// +kubebuilder:validation:MinLength=1
	Query string `json:"query"`
	// matches is a regular expression (fancy-regex) a found value must match.
	Matches string `json:"matches"`
}

// Empty reports whether the term tests nothing.
func (t HTTPFilterTerm) Empty() bool {
	return t.Header == "" && t.HeaderJQ == "" && t.Path == "" && t.Method == "" && t.Body == nil
}

// Top is the filter's own fields as one term (each set one must match).
func (f *HTTPFilter) Top() HTTPFilterTerm {
	return HTTPFilterTerm{Header: f.Header, HeaderJQ: f.HeaderJQ, Path: f.Path, Method: f.Method, Body: f.Body}
}

// Tests reports whether the filter has tests of its session's own (policies' aside).
func (f *HTTPFilter) Tests() bool {
	return f != nil && (!f.Top().Empty() || len(f.AllOf) > 0 || len(f.AnyOf) > 0)
}

// Filters reports whether the filter tests requests at all (a user's test or a policy's).
func (f *HTTPFilter) Filters() bool {
	return f.Tests() || (f != nil && len(f.RequiredHeaders) > 0)
}

// PortMapping maps a port of the target to a port of the local process.
type PortMapping struct {
	// remote is the target's port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Remote int32 `json:"remote"`
	// local is the local process's port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Local int32 `json:"local"`
}

// OutgoingFeature selects which outgoing connections leave from the target's network.
type OutgoingFeature struct {
	// tcp connections go through the target. Defaults to true.
	// +optional
	TCP *bool `json:"tcp,omitempty"`
	// udp datagrams go through the target. Defaults to true.
	// +optional
	UDP *bool `json:"udp,omitempty"`
	// filter chooses, per host, CIDR or port, whether a connection is made locally or remotely.
	// +optional
	Filter *OutgoingFilter `json:"filter,omitempty"`
}

// OutgoingFilter chooses local or remote per destination. Only one list may be set.
// Entries are "host", "host:port", "CIDR", "CIDR:port" or ":port".
type OutgoingFilter struct {
	// local destinations are reached from the developer's machine; everything else remotely.
	// +optional
	// +listType=atomic
	Local []string `json:"local,omitempty"`
	// remote destinations are reached from the target; everything else locally.
	// +optional
	// +listType=atomic
	Remote []string `json:"remote,omitempty"`
}

// DNSFeature selects where names are resolved.
type DNSFeature struct {
	// disabled resolves every name locally.
	// +optional
	Disabled bool `json:"disabled,omitempty"`
	// filter chooses per name, as mirrord's feature.network.dns.filter: the names of local
	// are resolved on the developer's machine and the rest through the target, or only the
	// names of remote through the target. Only one list may be set; entries are names (a
	// ":port" of an entry, which a DNS query does not carry, is not looked at).
	// +optional
	Filter *OutgoingFilter `json:"filter,omitempty"`
}

// Agent is the state of one agent: the Job that runs next to one target pod.
type Agent struct {
	// pod is the target pod the agent serves; for a targetless session, the agent's own pod.
	Pod string `json:"pod"`
	// node the target pod and the agent run on.
	// +optional
	Node string `json:"node,omitempty"`
	// job is the name of the agent's Job.
	// +optional
	Job string `json:"job,omitempty"`
	// namespace of the agent's Job and pod when it is not the controller's: a targetless
	// session's agent runs in the session's namespace.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// ready is true once the agent has entered the target and serves requests.
	Ready bool `json:"ready"`
	// address is the agent's pod IP and port, for the member controller to relay to.
	// +optional
	Address string `json:"address,omitempty"`
	// message explains why the agent is not ready.
	// +optional
	Message string `json:"message,omitempty"`
}

// SessionPhase summarises a session's state.
// +kubebuilder:validation:Enum=Pending;Ready;Degraded;Failed;Terminating
type SessionPhase string

// The session phases.
const (
	// SessionPending: children or agents are being created.
	SessionPending SessionPhase = "Pending"
	// SessionReady: every cluster's part of the session is ready.
	SessionReady SessionPhase = "Ready"
	// SessionDegraded: the session runs, but a cluster is unreachable or an agent is missing.
	SessionDegraded SessionPhase = "Degraded"
	// SessionFailed: the session cannot run (for example, a policy blocks it); it will not recover.
	SessionFailed SessionPhase = "Failed"
	// SessionTerminating: the session is being removed from every cluster.
	SessionTerminating SessionPhase = "Terminating"
)

// Condition types used by sessions and child sessions.
const (
	// ConditionReady is true when every part of the session is ready.
	ConditionReady = "Ready"
	// ConditionTargetResolved is true when the target was found and has pods.
	ConditionTargetResolved = "TargetResolved"
	// ConditionPolicyAllowed is false when a policy blocks the session; the reason names the policy.
	ConditionPolicyAllowed = "PolicyAllowed"
	// ConditionClustersReachable is false while a member cluster cannot be reached.
	ConditionClustersReachable = "ClustersReachable"
	// ConditionReachable is MirrordCluster's: true when the last probe of its API server succeeded.
	ConditionReachable = "Reachable"
	// ConditionSynced: every Workload cluster holds a queue registry's current spec.
	ConditionSynced = "Synced"
	// ConditionAuthorized is true when the session's owner may run it on its target: the
	// target is in the session's namespace, RBAC grants the owner VerbMirrord on it, and no
	// member excludes its namespace.
	ConditionAuthorized = "Authorized"
)

// Reasons of the Authorized condition; a session denied for one of them fails.
const (
	// ReasonAuthorized: the owner may run the session on its target.
	ReasonAuthorized = "Authorized"
	// ReasonTargetOutsideNamespace: the target is not in the session's namespace.
	ReasonTargetOutsideNamespace = "TargetOutsideNamespace"
	// ReasonTargetForbidden: RBAC does not grant the owner VerbMirrord on the target.
	ReasonTargetForbidden = "TargetForbidden"
	// ReasonNamespaceExcluded: a member's admin excludes the target's namespace from sessions.
	ReasonNamespaceExcluded = "NamespaceExcluded"
)

// Reasons the Primary and the members share: a member's child session states them, and the
// Primary reads them to decide the session's.
const (
	// ReasonResolved: the target was found (TargetResolved).
	ReasonResolved = "Resolved"
	// ReasonTargetNotFound: no such target here (TargetResolved false).
	ReasonTargetNotFound = "TargetNotFound"
	// ReasonNoRunningPods: the target's pods are all starting (TargetResolved false).
	ReasonNoRunningPods = "NoRunningPods"
	// ReasonNoPods: the target exists but has no pods, not even starting ones (scaled to 0).
	ReasonNoPods = "NoPods"
	// ReasonAllowed: no policy blocks the session (PolicyAllowed).
	ReasonAllowed = "Allowed"
)

// ReasonBlockedByPolicy is the reason of a PolicyAllowed (and Ready) condition that is false
// because a MirrordPolicy or MirrordClusterPolicy blocks a feature the session asks for, in a
// session and in its child sessions alike.
const ReasonBlockedByPolicy = "BlockedByPolicy"
