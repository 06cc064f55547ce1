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

package apitest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/authz"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/manager"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/roles"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
)

// The users of these tests, and what an admin granted them on the Primary:
//   - alice: the aggregated mirrord-user role in namespace hc only;
//   - bob: the sessions part of mirrord-user (mirrord-user-sessions) in shop, and the mirrord
//     verb on one deployment there, api (the README's narrower example).
const (
	alice = "alice"
	bob   = "bob"
)

func grantUsers(t *testing.T, s *Server) {
	t.Helper()
	ctx := t.Context()
	for _, ns := range []string{"hc", "shop"} {
		if _, err := s.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	bind := func(ns, name, kind, role, user string) {
		_, err := s.Kube.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	bind("hc", "alice-mirrord", "ClusterRole", "mirrord-user", alice)
	bind("shop", "bob-sessions", "ClusterRole", "mirrord-user-sessions", bob)
	if out, err := s.Kubectl(ctx, nil, "create", "role", "mirrord-api", "-n", "shop", "--verb=mirrord", "--resource=deployments.apps", "--resource-name=api"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	bind("shop", "bob-api", "Role", "mirrord-api", bob)
	// The aggregation controller fills mirrord-user in.
	waitFor(t, "mirrord-user aggregated", func(ctx context.Context) error {
		r, err := s.Kube.RbacV1().ClusterRoles().Get(ctx, "mirrord-user", metav1.GetOptions{})
		if err == nil && len(r.Rules) < 5 {
			err = fmt.Errorf("%d rules", len(r.Rules))
		}
		return err
	})
}

func session(ns, kind, name, targetNS string) *mirrordv1alpha1.MirrordSession {
	return &mirrordv1alpha1.MirrordSession{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "authz-", Namespace: ns},
		Spec: mirrordv1alpha1.MirrordSessionSpec{
			Target:     mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKind(kind), Name: name, Namespace: targetNS},
			TTLSeconds: 3600,
		},
	}
}

// create creates s as user (the admin when empty), owned by them unless s says otherwise.
func create(t *testing.T, s *Server, user string, sess *mirrordv1alpha1.MirrordSession) (*mirrordv1alpha1.MirrordSession, error) {
	t.Helper()
	c := s.Mirrord
	if user == "" {
		user = "admin"
		if sess.Spec.Owner == "" {
			sess.Spec.Owner, sess.Spec.OwnerGroups = user, []string{"system:masters", "system:authenticated"}
		}
	} else {
		var err error
		if c, err = versioned.NewForConfig(s.Impersonate(user)); err != nil {
			t.Fatal(err)
		}
	}
	if sess.Spec.Owner == "" {
		sess.Spec.Owner, sess.Spec.OwnerGroups = user, []string{"system:authenticated"}
	}
	return c.MirrordV1alpha1().MirrordSessions(sess.Namespace).Create(t.Context(), sess, metav1.CreateOptions{})
}

// TestAdmission: what the Primary's ValidatingAdmissionPolicy and RBAC let each user create.
func TestAdmission(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Install(t, "single-cluster")
	grantUsers(t, s)

	for name, tc := range map[string]struct {
		user    string
		session *mirrordv1alpha1.MirrordSession
		wantErr string // empty: created
	}{
		"alice targets a deployment of her namespace": {alice, session("hc", "Deployment", "api", "hc"), ""},
		"alice targets a pod of her namespace":        {alice, session("hc", "Pod", "api-0", "hc"), ""},
		// The hole: a user of one namespace reaching CoreDNS.
		"alice targets kube-system from her namespace": {alice, session("hc", "Deployment", "coredns", "kube-system"),
			"spec.target.namespace must be the session's namespace (hc), not kube-system: a session may target only workloads of its own namespace"},
		"alice creates a session in kube-system": {alice, session("kube-system", "Deployment", "coredns", "kube-system"), "forbidden"},
		"alice creates a session in shop":        {alice, session("shop", "Deployment", "api", "shop"), "forbidden"},
		"bob targets the one deployment granted": {bob, session("shop", "Deployment", "api", "shop"), ""},
		"bob targets its neighbour": {bob, session("shop", "Deployment", "web", "shop"),
			`bob may not run sessions on deployment/web in namespace shop: an admin grants the "mirrord" verb on deployments.apps`},
		"bob targets a pod of api's namespace":             {bob, session("shop", "Pod", "api-0", "shop"), `bob may not run sessions on pod/api-0`},
		"alice runs a targetless session in her namespace": {alice, session("hc", "Targetless", "", "hc"), ""},
		"bob was granted no targetless sessions": {bob, session("shop", "Targetless", "", "shop"),
			`bob may not run sessions on targetless in namespace shop: an admin grants the "mirrord" verb on targetless.kubectl-mirrord.io (all of the namespace's workloads with the mirrord-user ClusterRole, or this one: kubectl create role NAME -n shop --verb=mirrord --resource=targetless.kubectl-mirrord.io)`},
		"a targetless session names no workload": {alice, session("hc", "Targetless", "api", "hc"), "name is required, except for Targetless and Labels targets"},
		"alice targets pods by labels": {alice, func() *mirrordv1alpha1.MirrordSession {
			x := session("hc", "Labels", "", "hc")
			x.Spec.Target.Labels = map[string]string{"app": "api"}
			return x
		}(), ""},
		"bob may not target pods by labels (not every pod is his)": {bob, func() *mirrordv1alpha1.MirrordSession {
			x := session("shop", "Labels", "", "shop")
			x.Spec.Target.Labels = map[string]string{"app": "api"}
			return x
		}(), "bob may not run sessions on the pods labelled app=api in namespace shop"},
		"a labels target without labels":            {alice, session("hc", "Labels", "", "hc"), "labels are required for a Labels target"},
		"alice targets a cron job of her namespace": {alice, session("hc", "CronJob", "nightly", "hc"), ""},
		"bob targets a service he was not granted":  {bob, session("shop", "Service", "api", "shop"), `"mirrord" verb on services`},
		"a deployment target needs its name":        {alice, session("hc", "Deployment", "", "hc"), "name is required, except for Targetless and Labels targets"},
		"an anyOf term tests one thing": {alice, func() *mirrordv1alpha1.MirrordSession {
			x := session("hc", "Deployment", "api", "hc")
			x.Spec.Features.Network.Incoming.Mode = mirrordv1alpha1.IncomingModeSteal
			x.Spec.Features.Network.Incoming.HTTPFilter = &mirrordv1alpha1.HTTPFilter{AnyOf: []mirrordv1alpha1.HTTPFilterTerm{{Path: "/a"}, {Path: "/b", Method: "GET"}}}
			return x
		}(), "each term sets exactly one of header, headerJQ, path, method, body"},
		"a body filter with an allOf term": {alice, func() *mirrordv1alpha1.MirrordSession {
			x := session("hc", "Deployment", "api", "hc")
			x.Spec.Features.Network.Incoming.Mode = mirrordv1alpha1.IncomingModeSteal
			x.Spec.Features.Network.Incoming.HTTPFilter = &mirrordv1alpha1.HTTPFilter{Body: &mirrordv1alpha1.JSONBodyFilter{Query: "$.u", Matches: "^a$"}, AllOf: []mirrordv1alpha1.HTTPFilterTerm{{Header: "x"}}}
			return x
		}(), ""},
		"alice claims bob's name": {alice, func() *mirrordv1alpha1.MirrordSession {
			x := session("hc", "Deployment", "api", "hc")
			x.Spec.Owner, x.Spec.OwnerGroups = bob, []string{"system:authenticated"}
			return x
		}(), "spec.owner must be the user creating the session (alice), not bob"},
		"alice claims system:masters": {alice, func() *mirrordv1alpha1.MirrordSession {
			x := session("hc", "Deployment", "api", "hc")
			x.Spec.Owner, x.Spec.OwnerGroups = alice, []string{"system:masters", "system:authenticated"}
			return x
		}(), "spec.ownerGroups must be the groups of the user creating the session ([system:authenticated])"},
		"alice leaves her groups out": {alice, func() *mirrordv1alpha1.MirrordSession {
			x := session("hc", "Deployment", "api", "hc")
			x.Spec.Owner = alice
			x.Spec.OwnerGroups = []string{}
			return x
		}(), "spec.ownerGroups must be the groups"},
		"alice sets the controller's finalizer": {alice, func() *mirrordv1alpha1.MirrordSession {
			x := session("hc", "Deployment", "api", "hc")
			x.Finalizers = []string{mirrordv1alpha1.FinalizerChildren}
			return x
		}(), "kubectl-mirrord.io/children is the controller's to add"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := create(t, s, tc.user, tc.session)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
			}
		})
	}

	t.Run("the spec of a created session cannot change", func(t *testing.T) {
		created, err := create(t, s, alice, session("hc", "Deployment", "api", "hc"))
		if err != nil {
			t.Fatal(err)
		}
		c, _ := versioned.NewForConfig(s.Impersonate(alice))
		created.Spec.Target.Name = "other"
		_, err = c.MirrordV1alpha1().MirrordSessions("hc").Update(t.Context(), created, metav1.UpdateOptions{})
		if err == nil || !strings.Contains(err.Error(), "the spec of a session cannot change") {
			t.Fatalf("changing the target: err = %v", err)
		}
	})

	// The controller's second check asks RBAC the same question (authz.AccessReview).
	t.Run("RBAC's answers to the controller's SubjectAccessReviews", func(t *testing.T) {
		for _, tc := range []struct {
			user, ns, name string
			want           bool
		}{{alice, "hc", "api", true}, {alice, "shop", "api", false}, {bob, "shop", "api", true}, {bob, "shop", "web", false}} {
			spec := mirrordv1alpha1.MirrordSessionSpec{Owner: tc.user, OwnerGroups: []string{"system:authenticated"},
				Target: mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: tc.name, Namespace: tc.ns}}
			review, _ := authz.AccessReview(spec)
			got, err := s.Kube.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), review, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.Allowed != tc.want {
				t.Errorf("%s on %s/deploy/%s: allowed = %v, want %v (%s)", tc.user, tc.ns, tc.name, got.Status.Allowed, tc.want, got.Status.Reason)
			}
		}
	})

	// Nothing here runs the controller, which adds the finalizer once it runs a session.
	t.Run("a session made while no controller runs can be deleted, and its namespace", func(t *testing.T) {
		ns := "gone"
		if _, err := s.Kube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := create(t, s, "", session(ns, "Deployment", "api", ns)); err != nil {
			t.Fatal(err)
		}
		if err := s.Kube.CoreV1().Namespaces().Delete(t.Context(), ns, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the namespace gone", func(ctx context.Context) error {
			_, err := s.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("namespace %s still there (%v)", ns, err)
		})
	})

	// A member lets its Primary renew the Primary's own Lease, not this controller's.
	t.Run("the Primary's account on a member renews only its own Lease", func(t *testing.T) {
		primarySA := "system:serviceaccount:mirrord-system:" + mirrordv1alpha1.PrimaryServiceAccount
		kube, err := kubernetes.NewForConfig(s.Impersonate(primarySA, "system:serviceaccounts", "system:serviceaccounts:mirrord-system"))
		if err != nil {
			t.Fatal(err)
		}
		leases := kube.CoordinationV1().Leases("mirrord-system")
		own := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "kubectl-mirrord-primary-c1"}}
		if _, err := leases.Create(t.Context(), own, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating its own Lease: %v", err)
		}
		leader := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: manager.LeaseName}}
		if _, err := s.Kube.CoordinationV1().Leases("mirrord-system").Create(t.Context(), leader, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := leases.Get(t.Context(), manager.LeaseName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got.Spec.HolderIdentity = ptr.To("the-primary")
		if _, err := leases.Update(t.Context(), got, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "the Primary may only create and renew its own Lease") {
			t.Fatalf("taking the member's leader-election Lease: err = %v, want the admission policy's denial", err)
		}
	})
}

// TestControllersRefuse: a Primary installed without its admission policy (or one an admin
// removed) still refuses what admission would have, and a member refuses what its admin
// excludes even when the Primary asks.
func TestControllersRefuse(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Install(t, "single-cluster")
	grantUsers(t, s)
	if out, err := s.Kubectl(t.Context(), nil, "delete", "validatingadmissionpolicybinding", "kubectl-mirrord-session-owner"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// The API server's admission learns of the deletion from its own informer, a moment later.
	waitFor(t, "admission without its policy", func(ctx context.Context) error {
		c, err := versioned.NewForConfig(s.Impersonate(alice))
		if err != nil {
			return err
		}
		x := session("hc", "Deployment", "coredns", "kube-system")
		x.Spec.Owner, x.Spec.OwnerGroups = alice, []string{"system:authenticated"}
		_, err = c.MirrordV1alpha1().MirrordSessions(x.Namespace).Create(ctx, x, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	})
	runController(t, s)

	for name, tc := range map[string]struct {
		user       string
		session    *mirrordv1alpha1.MirrordSession
		wantReason string
	}{
		"a target in another namespace":    {alice, session("hc", "Deployment", "coredns", "kube-system"), mirrordv1alpha1.ReasonTargetOutsideNamespace},
		"a deployment RBAC does not grant": {bob, session("shop", "Deployment", "web", "shop"), mirrordv1alpha1.ReasonTargetForbidden},
		// RBAC is asked about the owner, not about whoever wrote the object.
		"an admin's object in the name of a user without the grant": {"", func() *mirrordv1alpha1.MirrordSession {
			x := session("shop", "Deployment", "api", "shop")
			x.Spec.Owner, x.Spec.OwnerGroups = "carol", []string{"system:authenticated"}
			return x
		}(), mirrordv1alpha1.ReasonTargetForbidden},
		"a member's excluded namespace, with RBAC's blessing": {"", session("kube-system", "Deployment", "coredns", "kube-system"), mirrordv1alpha1.ReasonNamespaceExcluded},
		"the one deployment granted":                          {bob, session("shop", "Deployment", "api", "shop"), mirrordv1alpha1.ReasonAuthorized},
	} {
		t.Run(name, func(t *testing.T) {
			created, err := create(t, s, tc.user, tc.session)
			if err != nil {
				t.Fatal(err)
			}
			var last *metav1.Condition
			waitFor(t, "the Authorized condition", func(ctx context.Context) error {
				got, err := s.Mirrord.MirrordV1alpha1().MirrordSessions(created.Namespace).Get(ctx, created.Name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if last = meta.FindStatusCondition(got.Status.Conditions, mirrordv1alpha1.ConditionAuthorized); last == nil || last.Reason != tc.wantReason {
					return fmt.Errorf("condition %+v, phase %s", last, got.Status.Phase)
				}
				if tc.wantReason != mirrordv1alpha1.ReasonAuthorized && got.Status.Phase != mirrordv1alpha1.SessionFailed {
					return fmt.Errorf("phase %s, want Failed", got.Status.Phase)
				}
				return nil
			})
			t.Logf("%s: %s", last.Reason, last.Message)
		})
	}

	t.Run("a member's policy block is the session's PolicyAllowed=False, BlockedByPolicy", func(t *testing.T) {
		if _, err := s.Mirrord.MirrordV1alpha1().MirrordPolicies("shop").Create(t.Context(), &mirrordv1alpha1.MirrordPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "no-steal"},
			Spec:       mirrordv1alpha1.PolicySpec{TargetPath: "deploy/api", Block: []mirrordv1alpha1.BlockedFeature{mirrordv1alpha1.BlockSteal}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		x := session("shop", "Deployment", "api", "shop")
		x.Spec.Features.Network.Incoming.Mode = mirrordv1alpha1.IncomingModeSteal
		created, err := create(t, s, "", x)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the session blocked by the policy", func(ctx context.Context) error {
			got, err := s.Mirrord.MirrordV1alpha1().MirrordSessions("shop").Get(ctx, created.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			c := meta.FindStatusCondition(got.Status.Conditions, mirrordv1alpha1.ConditionPolicyAllowed)
			if got.Status.Phase != mirrordv1alpha1.SessionFailed || c == nil || c.Status != metav1.ConditionFalse || c.Reason != mirrordv1alpha1.ReasonBlockedByPolicy {
				return fmt.Errorf("phase %s, PolicyAllowed %+v", got.Status.Phase, c)
			}
			return nil
		})
	})

	t.Run("a member refuses a child aimed outside its parent's namespace", func(t *testing.T) {
		child := &mirrordv1alpha1.MirrordClusterSession{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "forged-", Namespace: "mirrord-system",
				Labels: map[string]string{mirrordv1alpha1.LabelPrimary: "elsewhere"}},
			Spec: mirrordv1alpha1.MirrordClusterSessionSpec{
				Parent: mirrordv1alpha1.ParentReference{Namespace: "hc", Name: "x", UID: "1"},
				Roles:  []mirrordv1alpha1.ClusterRole{mirrordv1alpha1.ClusterRoleWorkload},
				Target: mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: "api", Namespace: "shop"},
			},
		}
		created, err := s.Mirrord.MirrordV1alpha1().MirrordClusterSessions("mirrord-system").Create(t.Context(), child, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the child refused", func(ctx context.Context) error {
			got, err := s.Mirrord.MirrordV1alpha1().MirrordClusterSessions("mirrord-system").Get(ctx, created.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if c := meta.FindStatusCondition(got.Status.Conditions, mirrordv1alpha1.ConditionAuthorized); c == nil || c.Reason != mirrordv1alpha1.ReasonTargetOutsideNamespace || got.Status.Phase != mirrordv1alpha1.SessionFailed {
				return fmt.Errorf("phase %s, condition %+v", got.Status.Phase, c)
			}
			return nil
		})
	})
}

// runController runs the controller with every role against s until t ends, as the
// single-cluster overlay would (its agents would never start: there are no nodes). It
// returns the address of its relay.
func runController(t *testing.T, s *Server) string {
	t.Helper()
	return runControllerAs(t, s, "local", roles.KeyPrimary, roles.KeyWorkload, roles.KeyDefault)
}

// runControllerAs runs the controller of cluster, with roles (roles.Key*), against s until t
// ends; it returns the address of its relay.
func runControllerAs(t *testing.T, s *Server, cluster string, keys ...string) string {
	t.Helper()
	rolesDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(rolesDir, roles.KeyClusterName), []byte(cluster), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := os.WriteFile(filepath.Join(rolesDir, k), []byte("true"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), klog.Background()))
	relayAddr := "127.0.0.1:" + freePorts(t, 1)[0]
	done := make(chan error, 1)
	go func() {
		done <- manager.Run(ctx, rest.CopyConfig(s.Config), manager.Config{
			RolesDir: rolesDir, Namespace: "mirrord-system", MetricsAddr: "0", ProbeAddr: "0", RelayAddr: relayAddr,
			AgentImage: "mirrord.local/kubectl-mirrord:dev", AgentDeadline: time.Hour, AgentStealBackend: "auto",
			Workers: 4, ExcludedNamespaces: authz.DefaultExcludedNamespaces,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	})
	return relayAddr
}

func waitFor(t *testing.T, what string, f func(context.Context) error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		last = f(ctx)
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last: %v)", what, err, last)
	}
}
