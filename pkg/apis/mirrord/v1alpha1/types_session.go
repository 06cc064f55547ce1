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

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MirrordSession is one developer's session, created on the Primary cluster by
// `kubectl mirrord exec`. The Primary's controller fans it out as one MirrordClusterSession
// per member cluster and gathers their state into its status.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mss;msession,categories=mirrord
// +kubebuilder:printcolumn:name="Owner",type=string,JSONPath=`.spec.owner`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.status.targetDescription`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.status.modeDescription`,description="incoming traffic: mirror, steal (with its HTTP filter) or off"
// +kubebuilder:printcolumn:name="Clusters",type=string,JSONPath=`.status.clustersDescription`,description="member clusters and their roles (Default, Workload)"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.clustersReady`,description="ready clusters / clusters"
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="TTL",type=integer,JSONPath=`.spec.ttlSeconds`,priority=1,description="seconds the session lives after its last heartbeat"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MirrordSession struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the developer asked for.
	// +required
	Spec MirrordSessionSpec `json:"spec"`
	// status is the session's state across every member cluster.
	// +optional
	Status MirrordSessionStatus `json:"status,omitempty"`
}

// MirrordSessionSpec is what a developer asks of a session.
type MirrordSessionSpec struct {
	// target is the workload whose pods the session runs in the context of.
	// +required
	Target Target `json:"target"`
	// owner is the Kubernetes user that created the session; admission binds it to the
	// requesting user and forbids changing it.
	// +required
	// +kubebuilder:validation:MinLength=1
	Owner string `json:"owner"`
	// ownerGroups are the groups of the user that created the session; admission binds them
	// to the requesting user's groups. Controllers ask RBAC whether owner, with these groups,
	// may run a session on the target.
	// +optional
	// +listType=atomic
	OwnerGroups []string `json:"ownerGroups,omitempty"`
	// publicKey is the session key's public half (base64 ed25519); only its holder can attach.
	// +optional
	PublicKey string `json:"publicKey,omitempty"`
	// features says what the session takes from the target.
	// +optional
	Features Features `json:"features,omitempty"`
	// ttlSeconds is how long the session lives without a heartbeat. Defaults to 30.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=5
	// +kubebuilder:validation:Maximum=3600
	TTLSeconds int32 `json:"ttlSeconds,omitempty"`
}

// MirrordSessionStatus is a session's state across every member cluster.
type MirrordSessionStatus struct {
	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// phase summarises the session.
	// +optional
	Phase SessionPhase `json:"phase,omitempty"`
	// targetDescription is the target as users write it, for example deploy/api/container/app.
	// +optional
	TargetDescription string `json:"targetDescription,omitempty"`
	// modeDescription is the incoming traffic handling as tables show it, for example
	// steal(path=^/api).
	// +optional
	ModeDescription string `json:"modeDescription,omitempty"`
	// clustersReady is "ready/total" member clusters, for display.
	// +optional
	ClustersReady string `json:"clustersReady,omitempty"`
	// clustersDescription lists the member clusters with the initials of their roles, for
	// example c2(D,W),c3(W).
	// +optional
	ClustersDescription string `json:"clustersDescription,omitempty"`
	// clusters has one entry per member cluster taking part in the session.
	// +optional
	// +listType=map
	// +listMapKey=name
	Clusters []SessionClusterStatus `json:"clusters,omitempty"`
	// conditions of the session: Ready, TargetResolved, PolicyAllowed, ClustersReachable.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// SessionClusterStatus is one member cluster's part of a session.
type SessionClusterStatus struct {
	// name of the MirrordCluster.
	Name string `json:"name"`
	// roles the cluster plays in this session.
	// +optional
	// +listType=set
	Roles []ClusterRole `json:"roles,omitempty"`
	// childName is the MirrordClusterSession's name in that cluster.
	// +optional
	ChildName string `json:"childName,omitempty"`
	// phase of the child session.
	// +optional
	Phase SessionPhase `json:"phase,omitempty"`
	// readyAgents counts the child's ready agents.
	// +optional
	ReadyAgents int32 `json:"readyAgents"`
	// agents counts the child's agents.
	// +optional
	Agents int32 `json:"agents"`
	// error says why the cluster's part is not ready, if it is not.
	// +optional
	Error string `json:"error,omitempty"`
	// lastHeartbeatTime is when the child last acknowledged the session's heartbeat.
	// +optional
	LastHeartbeatTime *metav1.Time `json:"lastHeartbeatTime,omitempty"`
	// queues are the session's split queues in that cluster.
	// +optional
	// +listType=map
	// +listMapKey=queueId
	// +kubebuilder:validation:MaxItems=16
	Queues []SessionQueueStatus `json:"queues,omitempty"`
}

// MirrordSessionList is a list of MirrordSessions.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type MirrordSessionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the sessions.
	Items []MirrordSession `json:"items"`
}
