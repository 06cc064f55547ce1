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
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Label, annotation and finalizer keys: the one place they are spelled.
const (
	// LabelPrimary names the Primary installation that created a child session.
	LabelPrimary = GroupName + "/primary"
	// LabelParentUID is the UID of the MirrordSession a child session belongs to.
	LabelParentUID = GroupName + "/parent-uid"
	// LabelParentNamespace and LabelParentName locate the parent on the Primary.
	LabelParentNamespace = GroupName + "/parent-namespace"
	LabelParentName      = GroupName + "/parent-name"
	// LabelTargetPodUID is the UID of the target pod an agent Job serves. The sessions it
	// serves are its owners.
	LabelTargetPodUID = GroupName + "/target-pod-uid"
	// LabelChildName and LabelChildUID name the child session a targetless agent Job serves:
	// the Job lives in the session's namespace, where an owner reference to the child (in
	// the controller's namespace) cannot reach.
	LabelChildName = GroupName + "/child"
	LabelChildUID  = GroupName + "/child-uid"
	// LabelBranchUID, LabelBranchNamespace and LabelBranchName name the MirrordDBBranch a
	// branch's pod and Service serve (which may live in the controller's namespace).
	LabelBranchUID       = GroupName + "/branch-uid"
	LabelBranchNamespace = GroupName + "/branch-namespace"
	LabelBranchName      = GroupName + "/branch-name"
	// LabelComponent tells controller and agent pods apart.
	LabelComponent = GroupName + "/component"
	// LabelOwner, LabelTargetKind and LabelTargetName are a session's owner and target as
	// label values (LabelValue), for `kubectl mirrord sessions -l`. The Primary's controller
	// keeps them equal to the spec, whatever the creator wrote.
	LabelOwner      = GroupName + "/owner"
	LabelTargetKind = GroupName + "/target-kind"
	LabelTargetName = GroupName + "/target-name"

	// FinalizerChildren keeps a MirrordSession until its child sessions in every member are
	// deleted: owner references do not cross clusters.
	FinalizerChildren = GroupName + "/children"
)

// PrimaryServiceAccount is the ServiceAccount a member creates for its Primary, in the
// member controller's namespace: the only identity its relay serves and the only one that
// may create child sessions and renew a Primary's Lease there.
const PrimaryServiceAccount = "mirrord-primary"

// Component values of LabelComponent.
const (
	ComponentController = "controller"
	ComponentAgent      = "agent"
	// ComponentTargetlessAgent: the agent of one targetless session, in its namespace.
	ComponentTargetlessAgent = "targetless-agent"
	// ComponentAgentKey: an agent Job's key Secret.
	ComponentAgentKey = "agent-key"
	// ComponentDBBranch: a database branch's pod and Service, in its namespace.
	ComponentDBBranch = "db-branch"
)

// SessionLabels are the labels a session with spec carries.
func SessionLabels(spec *MirrordSessionSpec) map[string]string {
	return map[string]string{
		LabelOwner:      LabelValue(spec.Owner),
		LabelTargetKind: LabelValue(strings.ToLower(string(spec.Target.Kind))),
		LabelTargetName: LabelValue(spec.Target.Name),
	}
}

// LabelValue makes s a label value: characters other than letters, digits, '-', '_' and '.'
// become '-' (alice@example.com is alice-example.com, system:serviceaccount:ns:sa is
// system-serviceaccount-ns-sa), it begins and ends with a letter or digit, and one longer
// than 63 characters keeps 54 and a hash of the whole (so two long names stay apart).
func LabelValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '-'
		}
	}
	v := strings.Trim(string(b), "-_.")
	if len(v) > 63 {
		sum := sha256.Sum256([]byte(s))
		v = strings.TrimRight(v[:54], "-_.") + "-" + hex.EncodeToString(sum[:4])
	}
	return v
}
