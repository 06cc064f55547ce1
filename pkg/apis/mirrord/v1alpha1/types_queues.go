package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Queue splitting (mirrord's SQS queue splitting): an admin declares, on the Primary, which
// workload consumes which queues; sessions whose config has feature.split_queues then get
// the messages their filter matches, and the deployed consumer the rest. The spec has the
// fields of mirrord's MirrordWorkloadQueueRegistry (queues.mirrord.metalbear.co/v1alpha), so
// an admin's registry moves here by its apiVersion, plus how this installation reaches SQS.

// QueueConsumerType is the kind of workload that consumes the queues.
// +kubebuilder:validation:Enum=Deployment;Rollout
type QueueConsumerType string

const (
	QueueConsumerDeployment QueueConsumerType = "Deployment"
	QueueConsumerRollout    QueueConsumerType = "Rollout"
)

// QueueConsumer is the workload that reads the queues.
type QueueConsumer struct {
	// name of the workload, in the registry's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// container that reads the queues; empty: every container of the workload.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Container string `json:"container,omitempty"`
	// workloadType is Deployment or Rollout.
	WorkloadType QueueConsumerType `json:"workloadType"`
}

// QueueNameSource is where the consumer reads a queue's name (or URL) from.
// +kubebuilder:validation:XValidation:rule="has(self.envVar) != has(self.regexPattern)",message="set exactly one of envVar or regexPattern"
type QueueNameSource struct {
	// envVar is the variable of the consumer's container holding the queue's name or URL.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	EnvVar string `json:"envVar,omitempty"`
	// regexPattern matches the names of several variables, each holding a queue's name or URL;
	// every queue found is split.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	RegexPattern string `json:"regexPattern,omitempty"`
}

// QueueType is a broker whose queues are split.
// +kubebuilder:validation:Enum=SQS
type QueueType string

const QueueTypeSQS QueueType = "SQS"

// SplitQueue is one queue of the consumer.
type SplitQueue struct {
	// queueType is the broker: SQS.
	QueueType QueueType `json:"queueType"`
	// nameSource is where the consumer reads the queue's name or URL; while a queue is split,
	// that variable names the queue the deployed consumer reads instead.
	NameSource QueueNameSource `json:"nameSource"`
	// fallbackName is the queue's name when the consumer's container lacks the variable
	// (which the split then adds).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	FallbackName string `json:"fallbackName,omitempty"`
	// namesFromJsonMap: the variable holds a JSON object whose values are queue names.
	// +optional
	NamesFromJSONMap bool `json:"namesFromJsonMap,omitempty"`
	// tags are set on the temporary queues made for this one, beside the original's own.
	// +optional
	// +kubebuilder:validation:MaxProperties=50
	Tags map[string]string `json:"tags,omitempty"`
	// sns: messages are SNS notifications; filters also match the attributes inside their body.
	// +optional
	SNS bool `json:"sns,omitempty"`
}

// SQSAccess is how the installation reaches SQS for this consumer's queues.
type SQSAccess struct {
	// region of the queues (default: the consumer's AWS_REGION or AWS_DEFAULT_REGION).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Region string `json:"region,omitempty"`
	// endpoint is an SQS-compatible server's URL, instead of AWS's.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^https?://`
	Endpoint string `json:"endpoint,omitempty"`
	// credentialsSecret names a Secret in the registry's namespace (in each Workload cluster)
	// with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and optionally AWS_SESSION_TOKEN);
	// without it, the consumer's own ServiceAccount (its cloud identity) is used.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	CredentialsSecret string `json:"credentialsSecret,omitempty"`
}

// MirrordWorkloadQueueRegistrySpec declares a consumer and its queues.
type MirrordWorkloadQueueRegistrySpec struct {
	// queues by id: the ids sessions' feature.split_queues name.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=20
	Queues map[string]SplitQueue `json:"queues"`
	// consumer is the workload that reads the queues.
	Consumer QueueConsumer `json:"consumer"`
	// workloadRestartTimeout is how long a split waits for the consumer's pods to read the
	// fallback queue, in seconds (default 120).
	// +optional
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=900
	WorkloadRestartTimeout *int32 `json:"workloadRestartTimeout,omitempty"`
	// sqs is how the installation reaches SQS (kubectl-mirrord's, not in mirrord's registry).
	// +optional
	SQS *SQSAccess `json:"sqs,omitempty"`
}

// QueueRegistryClusterStatus is a registry's state in one Workload cluster.
type QueueRegistryClusterStatus struct {
	// name of the cluster.
	Name string `json:"name"`
	// synced: the cluster holds the registry's current spec.
	Synced bool `json:"synced"`
	// message says why not, or what the cluster reports.
	// +optional
	Message string `json:"message,omitempty"`
	// splits are the sessions splitting the consumer's queues there now.
	// +optional
	Splits int32 `json:"splits,omitempty"`
}

// MirrordWorkloadQueueRegistryStatus is the registry's state in every Workload cluster.
type MirrordWorkloadQueueRegistryStatus struct {
	// observedGeneration is the spec's generation the clusters' states are of.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// splits are the live sessions splitting the consumer's queues.
	// +optional
	Splits int32 `json:"splits,omitempty"`
	// clusters are the Workload clusters, each with its state.
	// +optional
	// +listType=map
	// +listMapKey=name
	Clusters []QueueRegistryClusterStatus `json:"clusters,omitempty"`
	// conditions are Synced (every reachable Workload cluster holds the current spec).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// MirrordWorkloadQueueRegistry declares which queues a workload consumes, so sessions can split
// them (mirrord's MirrordWorkloadQueueRegistry). Admins create it on the Primary, in the
// consumer's namespace.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mqr,categories=mirrord
// +kubebuilder:printcolumn:name="Consumer",type=string,JSONPath=`.spec.consumer.name`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.consumer.workloadType`
// +kubebuilder:printcolumn:name="Splits",type=integer,JSONPath=`.status.splits`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MirrordWorkloadQueueRegistry struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec MirrordWorkloadQueueRegistrySpec `json:"spec"`
	// +optional
	Status MirrordWorkloadQueueRegistryStatus `json:"status,omitempty"`
}

// MirrordWorkloadQueueRegistryList is a list of registries.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type MirrordWorkloadQueueRegistryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MirrordWorkloadQueueRegistry `json:"items"`
}
