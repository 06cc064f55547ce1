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

package authz

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	authorizationv1 "k8s.io/api/authorization/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func deploy(ns, name string) mirrordv1alpha1.Target {
	return mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: name, Namespace: ns}
}

func TestPrimary(t *testing.T) {
	spec := func(tgt mirrordv1alpha1.Target) mirrordv1alpha1.MirrordSessionSpec {
		return mirrordv1alpha1.MirrordSessionSpec{Owner: "alice", OwnerGroups: []string{"dev"}, Target: tgt}
	}
	for name, tc := range map[string]struct {
		namespace  string
		spec       mirrordv1alpha1.MirrordSessionSpec
		access     *Access
		wantReason string // empty: allowed
		wantInMsg  []string
	}{
		"own namespace, RBAC allows": {
			namespace: "hc", spec: spec(deploy("hc", "api")), access: &Access{Allowed: true},
		},
		// The hole this package closes: a user of namespace hc aiming at CoreDNS.
		"another namespace, even when RBAC there would allow": {
			namespace: "hc", spec: spec(deploy("kube-system", "coredns")), access: &Access{Allowed: true},
			wantReason: mirrordv1alpha1.ReasonTargetOutsideNamespace,
			wantInMsg:  []string{"spec.target.namespace must be the session's namespace (hc), not kube-system", "-n kube-system"},
		},
		"own namespace, RBAC does not grant the verb on the target": {
			namespace: "shop", spec: spec(deploy("shop", "payments")), access: &Access{Allowed: false, Why: "no RBAC policy matched"},
			wantReason: mirrordv1alpha1.ReasonTargetForbidden,
			wantInMsg: []string{"alice may not run sessions on deployment/payments in namespace shop", `"mirrord" verb on deployments.apps`,
				"--verb=mirrord --resource=deployments.apps --resource-name=payments", "(no RBAC policy matched)"},
		},
		"a pod target names the core group's resource": {
			namespace: "shop", spec: spec(mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindPod, Name: "p", Namespace: "shop"}), access: &Access{},
			wantReason: mirrordv1alpha1.ReasonTargetForbidden,
			wantInMsg:  []string{"--resource=pods --resource-name=p"},
		},
		"targetless, RBAC does not grant the verb on targetless": {
			namespace: "shop", spec: spec(mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindTargetless, Namespace: "shop"}), access: &Access{},
			wantReason: mirrordv1alpha1.ReasonTargetForbidden,
			wantInMsg:  []string{"alice may not run targetless sessions in namespace shop", "--verb=mirrord --resource=targetless.kubectl-mirrord.io)"},
		},
		"labels: the verb on every pod": {
			namespace: "shop", spec: spec(mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindLabels, Labels: map[string]string{"app": "api"}, Namespace: "shop"}), access: &Access{},
			wantReason: mirrordv1alpha1.ReasonTargetForbidden,
			wantInMsg:  []string{"alice may not run sessions on labels/app=api in namespace shop", "--verb=mirrord --resource=pods)"},
		},
		"targetless in another namespace": {
			namespace: "shop", spec: spec(mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindTargetless, Namespace: "kube-system"}), access: &Access{Allowed: true},
			wantReason: mirrordv1alpha1.ReasonTargetOutsideNamespace,
		},
		"no answer from RBAC (a kind it cannot name) denies": {
			namespace: "shop", spec: spec(deploy("shop", "api")), access: nil,
			wantReason: mirrordv1alpha1.ReasonTargetForbidden,
		},
	} {
		t.Run(name, func(t *testing.T) {
			d := Primary(tc.namespace, tc.spec, tc.access)
			checkDenial(t, d, tc.wantReason, tc.wantInMsg)
		})
	}
}

func TestMember(t *testing.T) {
	excluded := []string{"mirrord-system", "kube-system"}
	child := func(parentNS string, tgt mirrordv1alpha1.Target) mirrordv1alpha1.MirrordClusterSessionSpec {
		return mirrordv1alpha1.MirrordClusterSessionSpec{Parent: mirrordv1alpha1.ParentReference{Namespace: parentNS, Name: "s"}, Target: tgt}
	}
	for name, tc := range map[string]struct {
		excluded   []string
		child      mirrordv1alpha1.MirrordClusterSessionSpec
		wantReason string
		wantInMsg  []string
	}{
		"a target in the parent's namespace": {excluded: excluded, child: child("shop", deploy("shop", "api"))},
		// A Primary that checked nothing (or was compromised) still cannot reach these.
		"kube-system, even when the Primary asks for it from a session of kube-system": {
			excluded: excluded, child: child("kube-system", deploy("kube-system", "coredns")),
			wantReason: mirrordv1alpha1.ReasonNamespaceExcluded,
			wantInMsg:  []string{"namespace kube-system is excluded from sessions in this cluster", "--excluded-namespaces: mirrord-system,kube-system"},
		},
		"the controller's own namespace": {
			excluded: excluded, child: child("mirrord-system", deploy("mirrord-system", "mirrord-controller")),
			wantReason: mirrordv1alpha1.ReasonNamespaceExcluded,
		},
		"a target outside the parent's namespace": {
			excluded: excluded, child: child("hc", deploy("shop", "api")),
			wantReason: mirrordv1alpha1.ReasonTargetOutsideNamespace,
		},
		"nothing excluded by the admin": {excluded: nil, child: child("kube-system", deploy("kube-system", "coredns"))},
	} {
		t.Run(name, func(t *testing.T) {
			checkDenial(t, Member(tc.excluded, tc.child), tc.wantReason, tc.wantInMsg)
		})
	}
}

func TestRelayPeer(t *testing.T) {
	for name, tc := range map[string]struct {
		user       string
		wantReason string
	}{
		"the Primary's ServiceAccount": {user: "system:serviceaccount:mirrord-system:mirrord-primary"},
		// Reading child sessions (a view role, say) used to be enough to drive them.
		"another account that may read child sessions": {user: "system:serviceaccount:mirrord-system:default", wantReason: ReasonNotThePrimary},
		"the same name in another namespace":           {user: "system:serviceaccount:shop:mirrord-primary", wantReason: ReasonNotThePrimary},
		"a user":                                       {user: "alice", wantReason: ReasonNotThePrimary},
	} {
		t.Run(name, func(t *testing.T) {
			checkDenial(t, RelayPeer("mirrord-system", tc.user), tc.wantReason, nil)
		})
	}
}

func TestAccessReview(t *testing.T) {
	for name, tc := range map[string]struct {
		target mirrordv1alpha1.Target
		want   *authorizationv1.ResourceAttributes
	}{
		"deployment": {deploy("shop", "api"), &authorizationv1.ResourceAttributes{Namespace: "shop", Verb: "mirrord", Group: "apps", Resource: "deployments", Name: "api"}},
		"pod":        {mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindPod, Name: "p", Namespace: "shop"}, &authorizationv1.ResourceAttributes{Namespace: "shop", Verb: "mirrord", Resource: "pods", Name: "p"}},
		"statefulset": {mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindStatefulSet, Name: "db", Namespace: "shop"},
			&authorizationv1.ResourceAttributes{Namespace: "shop", Verb: "mirrord", Group: "apps", Resource: "statefulsets", Name: "db"}},
		"targetless names no object": {mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindTargetless, Namespace: "shop"},
			&authorizationv1.ResourceAttributes{Namespace: "shop", Verb: "mirrord", Group: "kubectl-mirrord.io", Resource: "targetless"}},
		"cronjob": {mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindCronJob, Name: "nightly", Namespace: "shop"},
			&authorizationv1.ResourceAttributes{Namespace: "shop", Verb: "mirrord", Group: "batch", Resource: "cronjobs", Name: "nightly"}},
		"service": {mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindService, Name: "api", Namespace: "shop"},
			&authorizationv1.ResourceAttributes{Namespace: "shop", Verb: "mirrord", Resource: "services", Name: "api"}},
		"labels: every pod of the namespace": {mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindLabels, Labels: map[string]string{"app": "api"}, Namespace: "shop"},
			&authorizationv1.ResourceAttributes{Namespace: "shop", Verb: "mirrord", Resource: "pods"}},
		"an unknown kind cannot be reviewed": {mirrordv1alpha1.Target{Kind: "Route", Name: "x", Namespace: "shop"}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			spec := mirrordv1alpha1.MirrordSessionSpec{Owner: "alice", OwnerGroups: []string{"dev", "system:authenticated"}, Target: tc.target}
			r, ok := AccessReview(spec)
			if tc.want == nil {
				if ok {
					t.Fatalf("AccessReview(%v) = %+v, want none", tc.target, r)
				}
				return
			}
			want := authorizationv1.SubjectAccessReviewSpec{User: "alice", Groups: []string{"dev", "system:authenticated"}, ResourceAttributes: tc.want}
			if diff := cmp.Diff(want, r.Spec); !ok || diff != "" {
				t.Errorf("AccessReview (-want,+got):\n%s", diff)
			}
		})
	}
}

func checkDenial(t *testing.T, d *Denial, wantReason string, wantInMsg []string) {
	t.Helper()
	if wantReason == "" {
		if d != nil {
			t.Fatalf("denied (%s: %s), want allowed", d.Reason, d.Message)
		}
		return
	}
	if d == nil {
		t.Fatalf("allowed, want denied with reason %s", wantReason)
	}
	if d.Reason != wantReason {
		t.Errorf("reason = %s, want %s (message %q)", d.Reason, wantReason, d.Message)
	}
	for _, s := range wantInMsg {
		if !strings.Contains(d.Message, s) {
			t.Errorf("message %q lacks %q", d.Message, s)
		}
	}
}
