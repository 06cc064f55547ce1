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

// TargetQueryPhase says whether a MirrordTargetQuery has its answer.
// +kubebuilder:validation:Enum=Complete;Failed
type TargetQueryPhase string

// The phases of a MirrordTargetQuery; empty while the Primary asks its members.
const (
	TargetQueryComplete TargetQueryPhase = "Complete"
	TargetQueryFailed   TargetQueryPhase = "Failed"
)

// MaxTargetsPerQuery bounds a query's answer (and each member's part of it): the status
// must fit one object, and nobody reads more than this many lines.
const MaxTargetsPerQuery = 2000

// MirrordTargetQuerySpec is what `kubectl mirrord ls` asks: the targets of the query's
// namespace in every Workload cluster that its owner may run sessions on.
type MirrordTargetQuerySpec struct {
	// owner is the Kubernetes user that created the query; admission binds it to the
	// requesting user and forbids changing it.
	// +required
	// +kubebuilder:validation:MinLength=1
	Owner string `json:"owner"`
	// ownerGroups are the groups of the user that created the query; admission binds them to
	// the requesting user's groups.
	// +optional
	// +listType=atomic
	OwnerGroups []string `json:"ownerGroups,omitempty"`
	// kinds narrows the answer to these kinds of target; empty for every kind.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	Kinds []TargetKind `json:"kinds,omitempty"`
}

// FoundTarget is one target of the query's namespace and the clusters it is in.
type FoundTarget struct {
	// path is the target as a session names it (deployment/api, pod/api-1/container/app).
	// +required
	Path string `json:"path"`
	// clusters are the Workload clusters that have it, sorted.
	// +optional
	// +listType=atomic
	Clusters []string `json:"clusters,omitempty"`
}

// TargetQueryCluster is one Workload cluster's part of a query's answer.
type TargetQueryCluster struct {
	// name of the cluster (its MirrordCluster, or the Primary's own cluster name).
	// +required
	Name string `json:"name"`
	// targets is how many of the answer's targets this cluster has.
	// +optional
	Targets int32 `json:"targets"`
	// problem says why the cluster did not answer, or answered in part.
	// +optional
	Problem string `json:"problem,omitempty"`
}

// MirrordTargetQueryStatus is the Primary's answer.
type MirrordTargetQueryStatus struct {
	// phase is Complete once the answer is in, Failed when none could be given.
	// +optional
	Phase TargetQueryPhase `json:"phase,omitempty"`
	// message says why a query failed, or what its answer leaves out.
	// +optional
	Message string `json:"message,omitempty"`
	// targets the owner may run sessions on, in the order mirrord lists them (deployments,
	// rollouts, statefulsets, cronjobs, jobs, services, replicasets, daemonsets, pods).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=2000
	Targets []FoundTarget `json:"targets,omitempty"`
	// clusters are the Workload clusters asked.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Clusters []TargetQueryCluster `json:"clusters,omitempty"`
	// truncated says the answer stops at its limit (MaxTargetsPerQuery), or leaves out names
	// RBAC was not asked about.
	// +optional
	Truncated bool `json:"truncated,omitempty"`
	// completedAt is when the answer was written; the Primary deletes the query a few
	// minutes later.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
}

// MirrordTargetQuery is one `kubectl mirrord ls`: created by the CLI on the Primary, answered
// by the Primary's controller from every Workload cluster (each asked through its relay, with
// the Primary's own credentials there) and by RBAC on the Primary, then deleted. Users never
// need access to the member clusters.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mtq
// +kubebuilder:printcolumn:name="Owner",type=string,JSONPath=`.spec.owner`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MirrordTargetQuery struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the query asks.
	// +required
	Spec MirrordTargetQuerySpec `json:"spec"`
	// status is the Primary's answer.
	// +optional
	Status MirrordTargetQueryStatus `json:"status,omitempty"`
}

// MirrordTargetQueryList is a list of MirrordTargetQueries.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type MirrordTargetQueryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the queries.
	Items []MirrordTargetQuery `json:"items"`
}
