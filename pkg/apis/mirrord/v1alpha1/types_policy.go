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

// BlockedFeature is a session feature a policy can forbid.
// +kubebuilder:validation:Enum=steal;steal-without-filter;mirror;env;fs;outgoing;db-branches;db-branches-all
type BlockedFeature string

// The features a policy can block.
const (
	BlockSteal              BlockedFeature = "steal"
	BlockStealWithoutFilter BlockedFeature = "steal-without-filter"
	BlockMirror             BlockedFeature = "mirror"
	BlockEnv                BlockedFeature = "env"
	BlockFS                 BlockedFeature = "fs"
	BlockOutgoing           BlockedFeature = "outgoing"
	// BlockDBBranches forbids database branches of the target's database.
	BlockDBBranches BlockedFeature = "db-branches"
	// BlockDBBranchesAll forbids branches that copy every row (copy mode all); schema
	// copies with filtered tables stay allowed.
	BlockDBBranchesAll BlockedFeature = "db-branches-all"
)

// PolicySpec is shared by MirrordPolicy and MirrordClusterPolicy. A policy applies to a
// session when its target matches targetPath (if set) and selector (if set).
type PolicySpec struct {
	// targetPath is a glob over the target as users write it, for example "deploy/api*".
	// +optional
	TargetPath string `json:"targetPath,omitempty"`
	// selector matches the labels of the target workload.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// block lists the features sessions on matching targets may not use.
	// +optional
	// +listType=set
	Block []BlockedFeature `json:"block,omitempty"`
	// env forces environment excludes on matching sessions.
	// +optional
	Env *PolicyEnv `json:"env,omitempty"`
	// fs forces file system overrides on matching sessions.
	// +optional
	FS *PolicyFS `json:"fs,omitempty"`
	// requiredHeaderFilter, when set, is a regular expression every steal's header filter must match
	// (e.g. `^x-user: .+`), so developers only take their own requests.
	// +optional
	RequiredHeaderFilter string `json:"requiredHeaderFilter,omitempty"`
	// requiredProfiles, when set, are the profiles of which sessions on matching targets must
	// name one (a MirrordClusterProfile's NAME, or a MirrordProfile's NAMESPACE/NAME); the
	// Primary checks that a session's features follow the profile it names.
	// +optional
	// +listType=set
	RequiredProfiles []string `json:"requiredProfiles,omitempty"`
}

// PolicyEnv forces environment settings.
type PolicyEnv struct {
	// exclude lists variables never given to local processes.
	// +optional
	// +listType=atomic
	Exclude []string `json:"exclude,omitempty"`
}

// PolicyFS forces file system settings; entries are regular expressions over paths.
type PolicyFS struct {
	// readOnly paths may be read but never written.
	// +optional
	// +listType=atomic
	ReadOnly []string `json:"readOnly,omitempty"`
	// local paths are never read from the target.
	// +optional
	// +listType=atomic
	Local []string `json:"local,omitempty"`
	// notFound paths look absent to local processes.
	// +optional
	// +listType=atomic
	NotFound []string `json:"notFound,omitempty"`
}

// MirrordPolicy restricts sessions on targets in its namespace.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=mpol,categories=mirrord
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetPath`
// +kubebuilder:printcolumn:name="Block",type=string,JSONPath=`.spec.block`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MirrordPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the policy forbids or forces.
	// +required
	Spec PolicySpec `json:"spec"`
}

// MirrordPolicyList is a list of MirrordPolicies.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type MirrordPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the policies.
	Items []MirrordPolicy `json:"items"`
}

// MirrordClusterPolicy restricts sessions on targets in every namespace.
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=mcpol,categories=mirrord
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetPath`
// +kubebuilder:printcolumn:name="Block",type=string,JSONPath=`.spec.block`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MirrordClusterPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the policy forbids or forces.
	// +required
	Spec PolicySpec `json:"spec"`
}

// MirrordClusterPolicyList is a list of MirrordClusterPolicies.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type MirrordClusterPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the policies.
	Items []MirrordClusterPolicy `json:"items"`
}
