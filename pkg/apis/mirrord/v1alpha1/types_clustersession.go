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

// MirrordClusterSession is one member cluster's part of a MirrordSession. The Primary's
// controller creates it, with its own credentials, in the member's controller namespace;
// the member's controller runs one agent Job per target pod for it.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mcs,categories=mirrord
// +kubebuilder:printcolumn:name="Parent",type=string,JSONPath=`.spec.parent.name`
// +kubebuilder:printcolumn:name="Roles",type=string,JSONPath=`.spec.roles`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.target.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyAgents`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MirrordClusterSession struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the member's part of the parent session.
	// +required
	Spec MirrordClusterSessionSpec `json:"spec"`
	// status is the state of the member's agents.
	// +optional
	Status MirrordClusterSessionStatus `json:"status,omitempty"`
}

// ParentReference points from a child session to its MirrordSession on the Primary.
// Owner references cannot cross clusters, so the Primary's finalizer removes children.
type ParentReference struct {
	// cluster is the Primary's name for itself.
	// +optional
	Cluster string `json:"cluster,omitempty"`
	// namespace of the parent session.
	Namespace string `json:"namespace"`
	// name of the parent session.
	Name string `json:"name"`
	// uid of the parent session.
	UID string `json:"uid"`
}

// MirrordClusterSessionSpec is a member cluster's part of a session.
type MirrordClusterSessionSpec struct {
	// parent is the session on the Primary this child belongs to.
	// +required
	Parent ParentReference `json:"parent"`
	// roles this cluster plays for the session: Workload (traffic) and/or Default (env, files, DNS, outgoing).
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	Roles []ClusterRole `json:"roles"`
	// target is the workload to resolve in this cluster.
	// +required
	Target Target `json:"target"`
	// owner is copied from the parent, for policies and display.
	// +optional
	Owner string `json:"owner,omitempty"`
	// features are copied from the parent.
	// +optional
	Features Features `json:"features,omitempty"`
	// ttlSeconds is how long the child lives without a heartbeat from the Primary.
	// +optional
	// +kubebuilder:default=30
	TTLSeconds int32 `json:"ttlSeconds,omitempty"`
}

// MirrordClusterSessionStatus is the state of a member's agents for a session.
type MirrordClusterSessionStatus struct {
	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// phase summarises the child.
	// +optional
	Phase SessionPhase `json:"phase,omitempty"`
	// readyAgents counts the ready agents.
	// +optional
	ReadyAgents int32 `json:"readyAgents"`
	// lastHeartbeatTime is when the Primary last renewed the child.
	// +optional
	LastHeartbeatTime *metav1.Time `json:"lastHeartbeatTime,omitempty"`
	// agents has one entry per target pod.
	// +optional
	// +listType=map
	// +listMapKey=pod
	Agents []Agent `json:"agents,omitempty"`
	// features are what the agents serve this session: spec.features with this cluster's
	// policies applied. The agents are shared by every session on their target pods; the
	// member's relay hands each agent these when it connects for this session.
	// +optional
	Features *Features `json:"features,omitempty"`
	// queues are the session's split queues in this cluster.
	// +optional
	// +listType=map
	// +listMapKey=queueId
	// +kubebuilder:validation:MaxItems=16
	Queues []SessionQueueStatus `json:"queues,omitempty"`
	// conditions of the child: Ready, TargetResolved, PolicyAllowed.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// MirrordClusterSessionList is a list of MirrordClusterSessions.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type MirrordClusterSessionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the child sessions.
	Items []MirrordClusterSession `json:"items"`
}
