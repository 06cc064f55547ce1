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

// FeatureChange is one adjustment a profile makes to a session's features, as mirrord's
// profiles name them.
// +kubebuilder:validation:Enum=incoming-mirror;incoming-steal;incoming-off;dns-remote;dns-off;outgoing-remote;outgoing-off
type FeatureChange string

// The changes a profile can make.
const (
	ChangeIncomingMirror FeatureChange = "incoming-mirror"
	ChangeIncomingSteal  FeatureChange = "incoming-steal"
	ChangeIncomingOff    FeatureChange = "incoming-off"
	ChangeDNSRemote      FeatureChange = "dns-remote"
	ChangeDNSOff         FeatureChange = "dns-off"
	ChangeOutgoingRemote FeatureChange = "outgoing-remote"
	ChangeOutgoingOff    FeatureChange = "outgoing-off"
)

// FeatureAdjustment is one change of a profile.
type FeatureAdjustment struct {
	// change is what the adjustment sets.
	// +required
	Change FeatureChange `json:"change"`
}

// ProfileSpec is shared by MirrordProfile and MirrordClusterProfile (mirrord's spec).
type ProfileSpec struct {
	// featureAdjustments are applied to a session's features in order. The CLI applies them
	// when a config file names the profile, and the Primary refuses a session naming it whose
	// features do not follow them.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	FeatureAdjustments []FeatureAdjustment `json:"featureAdjustments"`
}

// MirrordProfile is a team's preset of session features in its namespace, named by a
// config file's `profile: NAMESPACE/NAME`.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=mprof,categories=mirrord
// +kubebuilder:printcolumn:name="Adjustments",type=string,JSONPath=`.spec.featureAdjustments[*].change`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MirrordProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the profile sets.
	// +required
	Spec ProfileSpec `json:"spec"`
}

// MirrordProfileList is a list of MirrordProfiles.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type MirrordProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the profiles.
	Items []MirrordProfile `json:"items"`
}

// MirrordClusterProfile is a preset of session features for every namespace, named by a
// config file's `profile: NAME`.
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=mcprof,categories=mirrord
// +kubebuilder:printcolumn:name="Adjustments",type=string,JSONPath=`.spec.featureAdjustments[*].change`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MirrordClusterProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the profile sets.
	// +required
	Spec ProfileSpec `json:"spec"`
}

// MirrordClusterProfileList is a list of MirrordClusterProfiles.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type MirrordClusterProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the profiles.
	Items []MirrordClusterProfile `json:"items"`
}
