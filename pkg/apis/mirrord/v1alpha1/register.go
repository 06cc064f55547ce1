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
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group of every kubectl-mirrord resource.
const GroupName = "kubectl-mirrord.io"

// SchemeGroupVersion is the group and version the types of this package are served as.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

// Resource turns an unqualified resource name into a group-qualified GroupResource.
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

var (
	// SchemeBuilder collects the functions that add this package's types to a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds this package's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(SchemeGroupVersion,
		&MirrordSession{}, &MirrordSessionList{},
		&MirrordClusterSession{}, &MirrordClusterSessionList{},
		&MirrordCluster{}, &MirrordClusterList{},
		&MirrordPolicy{}, &MirrordPolicyList{},
		&MirrordClusterPolicy{}, &MirrordClusterPolicyList{},
		&MirrordProfile{}, &MirrordProfileList{},
		&MirrordClusterProfile{}, &MirrordClusterProfileList{},
		&MirrordTargetQuery{}, &MirrordTargetQueryList{},
		&MirrordDBBranch{}, &MirrordDBBranchList{},
		&MirrordWorkloadQueueRegistry{}, &MirrordWorkloadQueueRegistryList{},
	)
	metav1.AddToGroupVersion(scheme, SchemeGroupVersion)
	return nil
}
