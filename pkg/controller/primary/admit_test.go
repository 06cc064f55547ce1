package primary

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/authz"
	w "github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/internal/wrappers"
)

var allowed = &authz.Access{Allowed: true}

// wantCondition is a condition a decided status must carry ("" matches any message).
type wantCondition struct {
	ok             bool
	reason, within string
}

func checkConditions(t *testing.T, st mirrordv1alpha1.MirrordSessionStatus, want map[string]wantCondition) {
	t.Helper()
	for typ, wc := range want {
		c := meta.FindStatusCondition(st.Conditions, typ)
		switch {
		case c == nil:
			t.Errorf("no %s condition", typ)
		case meta.IsStatusConditionTrue(st.Conditions, typ) != wc.ok || c.Reason != wc.reason || !strings.Contains(c.Message, wc.within):
			t.Errorf("%s = %s %s %q, want ok=%v %s with %q", typ, c.Status, c.Reason, c.Message, wc.ok, wc.reason, wc.within)
		}
	}
}

func TestAdmit(t *testing.T) {
	for name, tc := range map[string]struct {
		session *mirrordv1alpha1.MirrordSession
		in      admission
		// goOn: no verdict, the session goes on to its children.
		goOn           bool
		phase          mirrordv1alpha1.SessionPhase
		removeChildren bool
		failure        string
		conditions     map[string]wantCondition
	}{
		"allowed, with members": {
			session: w.Session("shop", "s").Obj(), in: admission{access: allowed, members: 2}, goOn: true,
		},
		"failed before: stays failed, holds nothing, says nothing again": {
			session: w.Session("shop", "s").Phase(mirrordv1alpha1.SessionFailed).Obj(), in: admission{access: allowed, members: 2},
			phase: mirrordv1alpha1.SessionFailed, removeChildren: true,
		},
		"RBAC denies the owner": {
			session: w.Session("shop", "s").Obj(), in: admission{access: &authz.Access{Why: "no rule"}, members: 2},
			phase: mirrordv1alpha1.SessionFailed, removeChildren: true, failure: "alice may not run sessions on deployment/api",
			conditions: map[string]wantCondition{mirrordv1alpha1.ConditionAuthorized: {false, mirrordv1alpha1.ReasonTargetForbidden, "(no rule)"}},
		},
		"RBAC could not be asked": {
			session: w.Session("shop", "s").Obj(), in: admission{members: 2},
			phase: mirrordv1alpha1.SessionFailed, removeChildren: true, failure: "may not run sessions",
			conditions: map[string]wantCondition{mirrordv1alpha1.ConditionAuthorized: {false, mirrordv1alpha1.ReasonTargetForbidden, ""}},
		},
		"a target in another namespace, whatever RBAC says": {
			session: w.Session("shop", "s").Target(mirrordv1alpha1.TargetKindDeployment, "api", "bank").Obj(), in: admission{access: allowed, members: 2},
			phase: mirrordv1alpha1.SessionFailed, removeChildren: true, failure: "must be the session's namespace (shop), not bank",
			conditions: map[string]wantCondition{mirrordv1alpha1.ConditionAuthorized: {false, mirrordv1alpha1.ReasonTargetOutsideNamespace, ""}},
		},
		"invalid roles fail a new session": {
			session: w.Session("shop", "s").Obj(), in: admission{access: allowed, topology: errors.New("two Default clusters"), members: 2},
			phase: mirrordv1alpha1.SessionFailed, removeChildren: true, failure: "cluster roles are invalid: two Default clusters",
			conditions: map[string]wantCondition{mirrordv1alpha1.ConditionReady: {false, mirrordv1alpha1.ReasonInvalidTopology, "two Default"}},
		},
		"invalid roles degrade a running session, which keeps its children": {
			session: w.Session("shop", "s").Phase(mirrordv1alpha1.SessionReady).Obj(), in: admission{access: allowed, topology: errors.New("two Default clusters"), members: 2},
			phase:      mirrordv1alpha1.SessionDegraded,
			conditions: map[string]wantCondition{mirrordv1alpha1.ConditionReady: {false, mirrordv1alpha1.ReasonInvalidTopology, "two Default"}},
		},
		"a Primary's policy blocks it": {
			session: w.Session("shop", "s").Obj(), in: admission{access: allowed, violation: errors.New("blocked by policy no-steal"), members: 2},
			phase: mirrordv1alpha1.SessionFailed, removeChildren: true, failure: "blocked by policy no-steal",
			conditions: map[string]wantCondition{
				mirrordv1alpha1.ConditionPolicyAllowed: {false, mirrordv1alpha1.ReasonBlockedByPolicy, "no-steal"},
				mirrordv1alpha1.ConditionAuthorized:    {true, mirrordv1alpha1.ReasonAuthorized, "alice may run sessions on deployment/api"},
			},
		},
		"a profile it does not follow": {
			session: w.Session("shop", "s").Obj(), in: admission{access: allowed, profile: "the session's features do not follow its profile team (incoming off, not mirror)", members: 2},
			phase: mirrordv1alpha1.SessionFailed, removeChildren: true, failure: "do not follow its profile team",
			conditions: map[string]wantCondition{mirrordv1alpha1.ConditionPolicyAllowed: {false, mirrordv1alpha1.ReasonProfileNotFollowed, "incoming off"}},
		},
		"no member cluster": {
			session: w.Session("shop", "s").Obj(), in: admission{access: allowed},
			phase: mirrordv1alpha1.SessionFailed, removeChildren: true, failure: "kubectl mirrord cluster register",
			conditions: map[string]wantCondition{mirrordv1alpha1.ConditionReady: {false, mirrordv1alpha1.ReasonNoMembers, ""}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			d, v := admit(tc.session, tc.in)
			if tc.goOn {
				if v != nil || d == nil {
					t.Fatalf("verdict %+v, want the session to go on", v)
				}
				checkConditions(t, d.st, map[string]wantCondition{mirrordv1alpha1.ConditionAuthorized: {true, mirrordv1alpha1.ReasonAuthorized, ""}})
				return
			}
			if v == nil {
				t.Fatal("no verdict, want the session to stop here")
			}
			if v.status.Phase != tc.phase || v.removeChildren != tc.removeChildren || (v.failure == "") != (tc.failure == "") || !strings.Contains(v.failure, tc.failure) {
				t.Errorf("verdict: phase %s, removeChildren %v, failure %q; want %s, %v, %q", v.status.Phase, v.removeChildren, v.failure, tc.phase, tc.removeChildren, tc.failure)
			}
			if v.status.ObservedGeneration != tc.session.Generation || v.status.TargetDescription == "" {
				t.Errorf("observedGeneration %d, targetDescription %q", v.status.ObservedGeneration, v.status.TargetDescription)
			}
			checkConditions(t, v.status, tc.conditions)
		})
	}
}
