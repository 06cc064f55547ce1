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

// DBEngine is the database engine of a branch.
// +kubebuilder:validation:Enum=PostgreSQL;MySQL;MariaDB
type DBEngine string

// The engines branches are made of.
const (
	DBEnginePostgreSQL DBEngine = "PostgreSQL"
	DBEngineMySQL      DBEngine = "MySQL"
	DBEngineMariaDB    DBEngine = "MariaDB"
)

// DBCopyMode says what a branch is seeded with from its source database.
// +kubebuilder:validation:Enum=Empty;Schema;All
type DBCopyMode string

// The copy modes, as mirrord's `copy.mode`.
const (
	// DBCopyEmpty: an empty database of the source's name (and the tables listed, with the
	// rows their filters select).
	DBCopyEmpty DBCopyMode = "Empty"
	// DBCopySchema: every table's schema, no rows (but the rows the listed tables' filters
	// select).
	DBCopySchema DBCopyMode = "Schema"
	// DBCopyAll: schema and rows of every table.
	DBCopyAll DBCopyMode = "All"
)

// DBValueSource is where one connection value of the source database comes from: a variable
// of the target container's environment (as its pod spec defines it, Secret and ConfigMap
// references included), a literal, or a key of a Secret in the branch's namespace.
// +kubebuilder:validation:XValidation:rule="(has(self.variable) ? 1 : 0) + (has(self.secret) ? 1 : 0) == 1",message="set exactly one of variable or secret"
type DBValueSource struct {
	// variable is the name of an environment variable of the target's container; with value
	// set, the variable the local command's value is written to.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Variable string `json:"variable,omitempty"`
	// container of the target whose environment holds variable (default: the target's).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Container string `json:"container,omitempty"`
	// fromEnvFrom says the variable comes from the container's envFrom (mirrord's env_from);
	// either is looked at when unset.
	// +optional
	FromEnvFrom bool `json:"fromEnvFrom,omitempty"`
	// value is a literal that stands for the variable's value.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Value string `json:"value,omitempty"`
	// secret is a key of a Secret in the branch's namespace of the Default cluster.
	// +optional
	Secret *DBSecretKey `json:"secret,omitempty"`
}

// DBSecretKey names one key of a Secret.
type DBSecretKey struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key in the Secret's data.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
	// envVarName is the local command's variable that gets the branch's value (mirrord's
	// env_var_name); none when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	EnvVarName string `json:"envVarName,omitempty"`
}

// DBConnection is how the source database is reached: a URL, or its parameters one by one.
// +kubebuilder:validation:XValidation:rule="has(self.url) != has(self.params)",message="set exactly one of url or params"
type DBConnection struct {
	// url holds the whole connection URL (postgres://user:password@host:port/db?...).
	// +optional
	URL *DBValueSource `json:"url,omitempty"`
	// params hold the connection's parts.
	// +optional
	Params *DBConnectionParams `json:"params,omitempty"`
}

// DBConnectionParams are a connection's parts; the branch needs at least the host.
type DBConnectionParams struct {
	// +required
	Host DBValueSource `json:"host"`
	// +optional
	Port *DBValueSource `json:"port,omitempty"`
	// +optional
	User *DBValueSource `json:"user,omitempty"`
	// +optional
	Password *DBValueSource `json:"password,omitempty"`
	// +optional
	Database *DBValueSource `json:"database,omitempty"`
}

// DBTableCopy narrows what one table's copy takes.
type DBTableCopy struct {
	// filter is an SQL condition (a WHERE clause without the WHERE) selecting the rows to
	// copy; every row when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Filter string `json:"filter,omitempty"`
}

// DBCopy is what a branch is seeded with.
type DBCopy struct {
	// mode is Empty, Schema or All. Defaults to Empty, as mirrord's.
	// +optional
	// +kubebuilder:default=Empty
	Mode DBCopyMode `json:"mode,omitempty"`
	// tables are copied with their schema and the rows their filters select (Empty and
	// Schema modes only).
	// +optional
	// +kubebuilder:validation:MaxProperties=256
	Tables map[string]DBTableCopy `json:"tables,omitempty"`
}

// MirrordDBBranchSpec is the branch a developer asked for.
// +kubebuilder:validation:XValidation:rule="self.copy.mode != 'All' || !has(self.copy.tables) || size(self.copy.tables) == 0",message="copy.tables select rows in the Empty and Schema modes; All copies every table whole"
type MirrordDBBranchSpec struct {
	// id is the branch's stable id (mirrord's `id`): sessions naming the same id in the
	// namespace share one branch.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ID string `json:"id"`
	// owner is the Kubernetes user that created the branch; admission binds it to the
	// requesting user.
	// +required
	// +kubebuilder:validation:MinLength=1
	Owner string `json:"owner"`
	// ownerGroups are the groups of the user that created the branch.
	// +optional
	// +listType=atomic
	OwnerGroups []string `json:"ownerGroups,omitempty"`
	// target is the workload whose database the branch copies, in the Default cluster: its
	// pod spec says how its container reaches the source database.
	// +required
	Target Target `json:"target"`
	// engine of the source database.
	// +required
	Engine DBEngine `json:"engine"`
	// version of the engine's image (the installation's default when empty).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Version string `json:"version,omitempty"`
	// database is the source database's name, where the connection does not say it
	// (mirrord's `name`).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Database string `json:"database,omitempty"`
	// connection says where the source database's connection comes from.
	// +required
	Connection DBConnection `json:"connection"`
	// copy says what the branch is seeded with.
	// +optional
	Copy DBCopy `json:"copy,omitempty"`
	// ttlSeconds is how long the branch stays once no session uses it. Defaults to 300, at
	// most 900 (mirrord's cap).
	// +optional
	// +kubebuilder:default=300
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=900
	TTLSeconds int32 `json:"ttlSeconds,omitempty"`
	// creationTimeoutSeconds is how long the branch may take to become Ready before it
	// fails. Defaults to 60.
	// +optional
	// +kubebuilder:default=60
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600
	CreationTimeoutSeconds int32 `json:"creationTimeoutSeconds,omitempty"`
}

// DBBranchPhase is where a branch is in its life.
// +kubebuilder:validation:Enum=Pending;Ready;Failed
type DBBranchPhase string

// The phases of a branch.
const (
	DBBranchPending DBBranchPhase = "Pending"
	DBBranchReady   DBBranchPhase = "Ready"
	DBBranchFailed  DBBranchPhase = "Failed"
)

// DBEndpoint is where the branch answers: reachable from the Default cluster's pods, so
// through a session's outgoing traffic.
type DBEndpoint struct {
	// host is the branch's Service name, resolvable in the Default cluster.
	Host string `json:"host"`
	// port the engine listens on.
	Port int32 `json:"port"`
	// database is the branch's database name (the source's).
	// +optional
	Database string `json:"database,omitempty"`
}

// MirrordDBBranchStatus is the branch's state.
type MirrordDBBranchStatus struct {
	// phase is Pending until the branch answers, then Ready; Failed says why in message.
	// +optional
	Phase DBBranchPhase `json:"phase,omitempty"`
	// reason is a CamelCase word for the phase (CopyFailed, SourceUnreachable, ...).
	// +optional
	Reason string `json:"reason,omitempty"`
	// message says what is happening, or what failed and what to do.
	// +optional
	Message string `json:"message,omitempty"`
	// endpoint is where the branch answers, once Ready.
	// +optional
	Endpoint *DBEndpoint `json:"endpoint,omitempty"`
	// sessions are the MirrordSessions of the namespace using the branch now.
	// +optional
	// +listType=atomic
	Sessions []string `json:"sessions,omitempty"`
	// lastUsedTime is when the last session using the branch ended (its TTL counts from it).
	// +optional
	LastUsedTime *metav1.Time `json:"lastUsedTime,omitempty"`
	// expireTime is when the branch goes if no session uses it by then.
	// +optional
	ExpireTime *metav1.Time `json:"expireTime,omitempty"`
	// conditions are Ready, with its reason.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// MirrordDBBranch is a private copy of a target's database (mirrord's database branching):
// created on the Primary by the CLI before a session that names it, materialised in the
// Default cluster (where the target's database is) as a pod of the engine seeded from the
// source, and deleted its TTL after the last session using it ended.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mdb,categories=mirrord
// +kubebuilder:printcolumn:name="Id",type=string,JSONPath=`.spec.id`
// +kubebuilder:printcolumn:name="Engine",type=string,JSONPath=`.spec.engine`
// +kubebuilder:printcolumn:name="Copy",type=string,JSONPath=`.spec.copy.mode`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.target.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Expires",type=date,JSONPath=`.status.expireTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="a branch's name is a label value on its pod and copies: at most 63 characters (kubectl mirrord names branches branch-ID, hashing long ids)"
type MirrordDBBranch struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the branch asked for.
	// +required
	Spec MirrordDBBranchSpec `json:"spec"`
	// status is the branch's state.
	// +optional
	Status MirrordDBBranchStatus `json:"status,omitempty"`
}

// MirrordDBBranchList is a list of MirrordDBBranches.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type MirrordDBBranchList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the branches.
	Items []MirrordDBBranch `json:"items"`
}
