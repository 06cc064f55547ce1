package primary

import (
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	w "github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/internal/wrappers"
)

const (
	workload = mirrordv1alpha1.ClusterRoleWorkload
	dflt     = mirrordv1alpha1.ClusterRoleDefault
)

// report is member's report of child (nil: none yet), with roles.
func report(member string, child *mirrordv1alpha1.MirrordClusterSession, roles ...mirrordv1alpha1.ClusterRole) childReport {
	r := childReport{member: member, child: child, entry: mirrordv1alpha1.SessionClusterStatus{Name: member, Roles: roles}}
	for _, role := range roles {
		r.workload = r.workload || role == workload
		r.isDefault = r.isDefault || role == dflt
	}
	return r
}

func unreachable(r childReport, why string) childReport {
	r.unreachable, r.entry.Error = true, why
	return r
}

func TestAggregate(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	s := w.Session("shop", "s").Obj()
	trafficOnly := w.Session("shop", "s").Features(mirrordv1alpha1.Features{
		Env:     mirrordv1alpha1.EnvFeature{Disabled: true},
		FS:      mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeLocal},
		Network: mirrordv1alpha1.NetworkFeature{DNS: mirrordv1alpha1.DNSFeature{Disabled: true}, Outgoing: mirrordv1alpha1.OutgoingFeature{TCP: ptr.To(false), UDP: ptr.To(false)}},
	}).Obj()
	child := func() *w.ClusterSessionWrapper { return w.ClusterSession("c", s) }
	resolved := func() *w.ClusterSessionWrapper {
		return child().Condition(mirrordv1alpha1.ConditionTargetResolved, true, mirrordv1alpha1.ReasonResolved, "1 pod")
	}
	ready := resolved().Phase(mirrordv1alpha1.SessionReady).Obj()
	pending := resolved().Phase(mirrordv1alpha1.SessionPending).Obj()
	notHere := child().Condition(mirrordv1alpha1.ConditionTargetResolved, false, mirrordv1alpha1.ReasonTargetNotFound, "no deployment/api").Phase(mirrordv1alpha1.SessionReady).Obj()
	noPodsFor := func(d time.Duration) *mirrordv1alpha1.MirrordClusterSession {
		return child().ConditionSince(mirrordv1alpha1.ConditionTargetResolved, true, mirrordv1alpha1.ReasonNoPods, "0 replicas", now.Add(-d)).Phase(mirrordv1alpha1.SessionPending).Obj()
	}
	for name, tc := range map[string]struct {
		session        *mirrordv1alpha1.MirrordSession
		reports        []childReport
		phase          mirrordv1alpha1.SessionPhase
		clustersReady  string
		failure        string
		recheckAtLeast time.Duration
		conditions     map[string]wantCondition
	}{
		"every child ready": {
			session: s, reports: []childReport{report("c1", ready, workload, dflt), report("c2", ready, workload)},
			phase: mirrordv1alpha1.SessionReady, clustersReady: "2/2",
			conditions: map[string]wantCondition{
				mirrordv1alpha1.ConditionReady:             {true, mirrordv1alpha1.ReasonClustersReady, "2 cluster(s) ready"},
				mirrordv1alpha1.ConditionTargetResolved:    {true, mirrordv1alpha1.ReasonResolved, "found in 2 cluster(s)"},
				mirrordv1alpha1.ConditionClustersReachable: {true, mirrordv1alpha1.ReasonAllReachable, ""},
				mirrordv1alpha1.ConditionPolicyAllowed:     {true, mirrordv1alpha1.ReasonAllowed, ""},
			},
		},
		"a child not made yet": {
			session: s, reports: []childReport{report("c1", ready, workload, dflt), report("c2", nil, workload)},
			phase: mirrordv1alpha1.SessionPending, clustersReady: "1/2",
			conditions: map[string]wantCondition{mirrordv1alpha1.ConditionReady: {false, mirrordv1alpha1.ReasonWaitingForClusters, "waiting for c2"}},
		},
		"a child still starting": {
			session: s, reports: []childReport{report("c1", ready, workload, dflt), report("c2", pending, workload)},
			phase: mirrordv1alpha1.SessionPending, clustersReady: "1/2",
			conditions: map[string]wantCondition{mirrordv1alpha1.ConditionReady: {false, mirrordv1alpha1.ReasonWaitingForClusters, "waiting for c2"}},
		},
		"a member unreachable": {
			session: s, reports: []childReport{report("c1", ready, workload, dflt), unreachable(report("c2", nil, workload), "connection refused")},
			phase: mirrordv1alpha1.SessionDegraded, clustersReady: "1/2",
			conditions: map[string]wantCondition{
				mirrordv1alpha1.ConditionReady:             {false, mirrordv1alpha1.ReasonClusterUnreachable, "c2 (connection refused)"},
				mirrordv1alpha1.ConditionClustersReachable: {false, mirrordv1alpha1.ReasonClusterUnreachable, "c2 (connection refused)"},
			},
		},
		"a child refused by its member's RBAC check": {
			session: s,
			reports: []childReport{report("c1", ready, workload, dflt), report("c2", child().Phase(mirrordv1alpha1.SessionFailed).
				Condition(mirrordv1alpha1.ConditionAuthorized, false, mirrordv1alpha1.ReasonNamespaceExcluded, "shop is excluded").
				Condition(mirrordv1alpha1.ConditionReady, false, "Refused", "namespace shop is excluded here").Obj(), workload)},
			phase: mirrordv1alpha1.SessionFailed, clustersReady: "1/2", failure: "cluster c2: namespace shop is excluded here",
			conditions: map[string]wantCondition{
				mirrordv1alpha1.ConditionReady:      {false, mirrordv1alpha1.ReasonClusterFailed, "cluster c2"},
				mirrordv1alpha1.ConditionAuthorized: {false, mirrordv1alpha1.ReasonNamespaceExcluded, "cluster c2"},
			},
		},
		"a child blocked by its member's policy": {
			session: s,
			reports: []childReport{report("c1", child().Phase(mirrordv1alpha1.SessionFailed).
				Condition(mirrordv1alpha1.ConditionPolicyAllowed, false, mirrordv1alpha1.ReasonBlockedByPolicy, "no steal").
				Condition(mirrordv1alpha1.ConditionReady, false, "Blocked", "blocked by policy no-steal").Obj(), workload, dflt)},
			phase: mirrordv1alpha1.SessionFailed, clustersReady: "0/1", failure: "cluster c1: blocked by policy no-steal",
			conditions: map[string]wantCondition{mirrordv1alpha1.ConditionPolicyAllowed: {false, mirrordv1alpha1.ReasonBlockedByPolicy, "cluster c1"}},
		},
		"the target nowhere": {
			session: s, reports: []childReport{report("c1", notHere, workload, dflt), report("c2", notHere, workload)},
			phase: mirrordv1alpha1.SessionFailed, clustersReady: "2/2", failure: "deployment/api not found in namespace shop in any workload cluster (2 checked)",
			conditions: map[string]wantCondition{mirrordv1alpha1.ConditionTargetResolved: {false, mirrordv1alpha1.ReasonTargetNotFound, ""}},
		},
		"the target nowhere yet, a member not reporting": {
			session: s, reports: []childReport{report("c1", notHere, workload, dflt), report("c2", nil, workload)},
			phase: mirrordv1alpha1.SessionPending, clustersReady: "1/2",
		},
		"no pods anywhere, within the grace": {
			session: s, reports: []childReport{report("c1", noPodsFor(4*time.Second), workload, dflt)},
			phase: mirrordv1alpha1.SessionPending, clustersReady: "0/1", recheckAtLeast: 6 * time.Second,
		},
		"no pods anywhere, past the grace": {
			session: s, reports: []childReport{report("c1", noPodsFor(noPodsGrace), workload, dflt)},
			phase: mirrordv1alpha1.SessionFailed, clustersReady: "0/1", failure: "has no pods in any workload cluster (c1): scale it up",
			conditions: map[string]wantCondition{mirrordv1alpha1.ConditionTargetResolved: {false, mirrordv1alpha1.ReasonNoPods, ""}},
		},
		"no pods in one cluster, pods in another": {
			session: s, reports: []childReport{report("c1", noPodsFor(time.Minute), workload, dflt), report("c2", ready, workload)},
			phase: mirrordv1alpha1.SessionPending, clustersReady: "1/2",
		},
		"not in the Default cluster, the session wants its environment": {
			session: s, reports: []childReport{report("c1", notHere, dflt), report("c2", ready, workload)},
			phase: mirrordv1alpha1.SessionFailed, clustersReady: "2/2", failure: "not in the Default cluster c1",
			conditions: map[string]wantCondition{mirrordv1alpha1.ConditionTargetResolved: {false, mirrordv1alpha1.ReasonNotInDefault, ""}},
		},
		"not in the Default cluster, the session takes only traffic": {
			session: trafficOnly, reports: []childReport{report("c1", notHere, dflt), report("c2", ready, workload)},
			phase: mirrordv1alpha1.SessionReady, clustersReady: "2/2",
			conditions: map[string]wantCondition{mirrordv1alpha1.ConditionTargetResolved: {true, mirrordv1alpha1.ReasonNotInDefault, "takes only its traffic"}},
		},
		"not in the Default cluster, and nobody has said it is elsewhere": {
			session: s, reports: []childReport{report("c1", notHere, dflt), report("c2", child().Obj(), workload)},
			phase: mirrordv1alpha1.SessionPending, clustersReady: "1/2",
		},
	} {
		t.Run(name, func(t *testing.T) {
			d, pre := admit(tc.session, admission{access: allowed, members: len(tc.reports)})
			if pre != nil {
				t.Fatalf("not admitted: %+v", pre)
			}
			v := aggregate(tc.session, d, tc.reports, now)
			if v.status.Phase != tc.phase || v.status.ClustersReady != tc.clustersReady {
				t.Errorf("phase %s, clustersReady %s; want %s, %s (%+v)", v.status.Phase, v.status.ClustersReady, tc.phase, tc.clustersReady, v.status.Conditions)
			}
			if (v.failure == "") != (tc.failure == "") || !strings.Contains(v.failure, tc.failure) || v.removeChildren != (tc.failure != "") {
				t.Errorf("failure %q (removeChildren %v), want %q", v.failure, v.removeChildren, tc.failure)
			}
			if (v.recheck > 0) != (tc.recheckAtLeast > 0) || v.recheck < tc.recheckAtLeast {
				t.Errorf("recheck %v, want at least %v", v.recheck, tc.recheckAtLeast)
			}
			if len(v.status.Clusters) != len(tc.reports) {
				t.Errorf("%d cluster lines, want one per member (%d)", len(v.status.Clusters), len(tc.reports))
			}
			checkConditions(t, v.status, tc.conditions)
		})
	}
}
