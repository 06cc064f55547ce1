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

// MirrordCluster is a member cluster, registered on the Primary. Its Secret holds the
// credentials the Primary's controller uses there; users never need any.
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=mcl,categories=mirrord
// +kubebuilder:printcolumn:name="Workload",type=boolean,JSONPath=`.spec.workload`
// +kubebuilder:printcolumn:name="Default",type=boolean,JSONPath=`.spec.default`
// +kubebuilder:printcolumn:name="Reachable",type=string,JSONPath=`.status.conditions[?(@.type=="Reachable")].status`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.kubernetesVersion`
// +kubebuilder:printcolumn:name="Last Probe",type=date,JSONPath=`.status.lastProbeTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MirrordCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says how to reach the member and which roles it plays.
	// +required
	Spec MirrordClusterSpec `json:"spec"`
	// status is what the last probe found.
	// +optional
	Status MirrordClusterStatus `json:"status,omitempty"`
}

// MirrordClusterSpec says how to reach a member cluster and which roles it plays.
type MirrordClusterSpec struct {
	// server is the member's API server URL, as reachable from the Primary's controller pods.
	// +required
	// +kubebuilder:validation:Pattern=`^https://`
	Server string `json:"server"`
	// secretRef names the Secret, in the Primary controller's namespace, holding "token"
	// (a ServiceAccount bearer token of the member) and "ca.crt".
	// +required
	SecretRef SecretReference `json:"secretRef"`
	// workload is true when target pods run in the member: it gets agents for traffic.
	// +optional
	Workload bool `json:"workload,omitempty"`
	// default is true for the one cluster that answers env, files, DNS and outgoing traffic.
	// +optional
	Default bool `json:"default,omitempty"`
	// namespace is the member controller's namespace, where child sessions are created.
	// Defaults to mirrord-system.
	// +optional
	// +kubebuilder:default=mirrord-system
	Namespace string `json:"namespace,omitempty"`
}

// SecretReference names a Secret in the controller's namespace.
type SecretReference struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// MirrordClusterStatus is what the last probe of a member found.
type MirrordClusterStatus struct {
	// kubernetesVersion is the member API server's version.
	// +optional
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// lastProbeTime is when the member was last probed.
	// +optional
	LastProbeTime *metav1.Time `json:"lastProbeTime,omitempty"`
	// conditions of the member: Reachable.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// MirrordClusterList is a list of MirrordClusters.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type MirrordClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the member clusters.
	Items []MirrordCluster `json:"items"`
}
