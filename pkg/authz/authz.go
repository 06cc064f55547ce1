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

// Package authz decides who may target what. A session runs privileged agents next to its
// target in every member cluster, so what a user may target is bounded three times, each
// by a pure function here that its caller feeds with what it gathered:
//
//   - admission on the Primary (the ValidatingAdmissionPolicy in kustomize/components/primary,
//     which states the same rules in CEL) refuses a session before it exists;
//   - the Primary's controller checks again (Primary): the target is in the session's
//     namespace, and RBAC grants the owner the mirrord verb on it (a SubjectAccessReview);
//   - every member checks what it is asked to do (Member): it never trusts the Primary alone,
//     and refuses targets in the namespaces its admin excludes.
package authz

import (
	"fmt"
	"slices"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

// Denial is why a session may not run on its target. Reason is one of the Authorized
// condition's reasons in pkg/apis.
type Denial struct {
	Reason  string
	Message string
}

func (d *Denial) Error() string { return d.Message }

// Access is RBAC's answer to whether a session's owner may run it on its target: what a
// SubjectAccessReview (AccessReview) returned.
type Access struct {
	// Allowed is the review's answer.
	Allowed bool
	// Why is the authorizer's reason or evaluation error, for the message; often empty.
	Why string
}

// Namespace refuses a target outside the session's namespace: RBAC on the Primary is
// granted per namespace, and a session's reach must be no wider than its owner's.
func Namespace(sessionNamespace string, t mirrordv1alpha1.Target) *Denial {
	if t.Namespace == sessionNamespace {
		return nil
	}
	return &Denial{
		Reason: mirrordv1alpha1.ReasonTargetOutsideNamespace,
		Message: fmt.Sprintf("spec.target.namespace must be the session's namespace (%s), not %s: a session may target only workloads of its own namespace; create it in namespace %s (kubectl mirrord exec -n %s)",
			sessionNamespace, t.Namespace, t.Namespace, t.Namespace),
	}
}

// AccessReview is the SubjectAccessReview that asks whether the owner of spec, with their
// groups, may run a session on its target: the mirrord verb on the target's resource and name.
// ok is false for a target kind RBAC cannot name.
func AccessReview(spec mirrordv1alpha1.MirrordSessionSpec) (*authorizationv1.SubjectAccessReview, bool) {
	group, resource, ok := spec.Target.Kind.GroupResource()
	if !ok {
		return nil, false
	}
	return &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   spec.Owner,
		Groups: slices.Clone(spec.OwnerGroups),
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: spec.Target.Namespace,
			Verb:      mirrordv1alpha1.VerbMirrord,
			Group:     group,
			Resource:  resource,
			Name:      spec.Target.Name,
		},
	}}, true
}

// Primary decides whether the Primary runs the session: its target is in its namespace and
// access (RBAC's answer to AccessReview, nil when it could not be asked because the kind has
// no resource) allows the owner.
func Primary(sessionNamespace string, spec mirrordv1alpha1.MirrordSessionSpec, access *Access) *Denial {
	if d := Namespace(sessionNamespace, spec.Target); d != nil {
		return d
	}
	if access != nil && access.Allowed {
		return nil
	}
	group, resource, _ := spec.Target.Kind.GroupResource()
	gr := resource
	if group != "" {
		gr += "." + group
	}
	var msg string
	if spec.Target.IsTargetless() {
		msg = fmt.Sprintf("%s may not run targetless sessions in namespace %s: an admin grants the %q verb on %s (with the mirrord-user ClusterRole, or alone: kubectl create role NAME -n %s --verb=%s --resource=%s)",
			spec.Owner, spec.Target.Namespace, mirrordv1alpha1.VerbMirrord, gr, spec.Target.Namespace, mirrordv1alpha1.VerbMirrord, gr)
	} else {
		one := " --resource-name=" + spec.Target.Name
		if spec.Target.Name == "" {
			one = "" // a Labels target: the verb on every pod of the namespace
		}
		msg = fmt.Sprintf("%s may not run sessions on %s in namespace %s: an admin grants the %q verb on %s (all of the namespace's workloads with the mirrord-user ClusterRole, or this one: kubectl create role NAME -n %s --verb=%s --resource=%s%s)",
			spec.Owner, target.String(mirrordv1alpha1.Target{Kind: spec.Target.Kind, Name: spec.Target.Name, Labels: spec.Target.Labels}), spec.Target.Namespace,
			mirrordv1alpha1.VerbMirrord, gr, spec.Target.Namespace, mirrordv1alpha1.VerbMirrord, gr, one)
	}
	if access != nil && access.Why != "" {
		msg += " (" + access.Why + ")"
	}
	return &Denial{Reason: mirrordv1alpha1.ReasonTargetForbidden, Message: msg}
}

// DefaultExcludedNamespaces are the namespaces a member refuses targets in unless its admin
// says otherwise: the cluster's own system and the controller's (whose pods hold the
// member's and the Primary's credentials). The controller's namespace is added by the caller.
var DefaultExcludedNamespaces = []string{"kube-system"}

// Member decides whether a member serves a child session: its target must be in the parent
// session's namespace (a member does not take the Primary's word for what the Primary
// checked) and not in a namespace this member's admin excludes.
func Member(excluded []string, child mirrordv1alpha1.MirrordClusterSessionSpec) *Denial {
	t := child.Target
	if slices.Contains(excluded, t.Namespace) {
		return &Denial{
			Reason: mirrordv1alpha1.ReasonNamespaceExcluded,
			Message: fmt.Sprintf("namespace %s is excluded from sessions in this cluster by its admin (the controller's --excluded-namespaces: %s)",
				t.Namespace, strings.Join(excluded, ",")),
		}
	}
	if d := Namespace(child.Parent.Namespace, t); d != nil {
		return d
	}
	return nil
}

// ReasonNotThePrimary is RelayPeer's reason: a connection refused, never a condition.
const ReasonNotThePrimary = "NotThePrimary"

// PrimaryIdentity is the username of the ServiceAccount a member registered for its Primary
// (mirrordv1alpha1.PrimaryServiceAccount in the member controller's namespace).
func PrimaryIdentity(memberNamespace string) string {
	return "system:serviceaccount:" + memberNamespace + ":" + mirrordv1alpha1.PrimaryServiceAccount
}

// RelayPeer decides whether a member's relay serves a connection whose token the member's
// API server says belongs to username: only the Primary's registered identity drives child
// sessions, whatever else RBAC lets other accounts read.
func RelayPeer(memberNamespace, username string) *Denial {
	if want := PrimaryIdentity(memberNamespace); username != want {
		return &Denial{
			Reason:  ReasonNotThePrimary,
			Message: fmt.Sprintf("%s is not this cluster's Primary: only %s may connect to a member's relay (register the cluster again with `kubectl mirrord cluster register`)", username, want),
		}
	}
	return nil
}
