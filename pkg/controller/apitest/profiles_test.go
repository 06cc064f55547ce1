package apitest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
	clisession "github.com/kubectl-mirrord/kubectl-mirrord/pkg/session"
)

// TestProfiles: a user reads the profiles a config file names and exec applies them
// (session.ApplyProfile, as alice: namespace profiles through mirrord-user, cluster-wide ones
// as any authenticated user); the Primary refuses a starting session that names a profile
// it does not follow, a profile that does not exist or one of another namespace; and a
// policy may require a profile.
func TestProfiles(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Install(t, "single-cluster")
	grantUsers(t, s)
	ctx := t.Context()
	adjust := func(changes ...mirrordv1alpha1.FeatureChange) mirrordv1alpha1.ProfileSpec {
		var spec mirrordv1alpha1.ProfileSpec
		for _, c := range changes {
			spec.FeatureAdjustments = append(spec.FeatureAdjustments, mirrordv1alpha1.FeatureAdjustment{Change: c})
		}
		return spec
	}
	if _, err := s.Mirrord.MirrordV1alpha1().MirrordClusterProfiles().Create(ctx, &mirrordv1alpha1.MirrordClusterProfile{
		ObjectMeta: metav1.ObjectMeta{Name: "no-incoming"}, Spec: adjust(mirrordv1alpha1.ChangeIncomingOff),
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mirrord.MirrordV1alpha1().MirrordProfiles("hc").Create(ctx, &mirrordv1alpha1.MirrordProfile{
		ObjectMeta: metav1.ObjectMeta{Name: "strict"}, Spec: adjust(mirrordv1alpha1.ChangeIncomingSteal, mirrordv1alpha1.ChangeOutgoingOff),
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mirrord.MirrordV1alpha1().MirrordProfiles("hc").Create(ctx, &mirrordv1alpha1.MirrordProfile{
		ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: adjust("incoming-sideways"),
	}, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "Unsupported value") {
		t.Errorf("a profile with an unknown change: %v, want the schema's refusal", err)
	}

	t.Run("exec applies the profile it may read", func(t *testing.T) {
		for _, tc := range []struct {
			user, ns, profile, wantErr string
			check                      func(mirrordv1alpha1.Features) bool
		}{
			{user: alice, ns: "hc", profile: "no-incoming", check: func(f mirrordv1alpha1.Features) bool {
				return f.Network.Incoming.Mode == mirrordv1alpha1.IncomingModeOff
			}},
			{user: alice, ns: "hc", profile: "hc/strict", check: func(f mirrordv1alpha1.Features) bool {
				return f.Network.Incoming.Mode == mirrordv1alpha1.IncomingModeSteal && !*f.Network.Outgoing.TCP
			}},
			{user: bob, ns: "shop", profile: "no-incoming", check: func(f mirrordv1alpha1.Features) bool {
				return f.Network.Incoming.Mode == mirrordv1alpha1.IncomingModeOff
			}},
			{user: bob, ns: "hc", profile: "hc/strict", wantErr: "you may not read it"},
			{user: alice, ns: "shop", profile: "hc/strict", wantErr: "must be in the session's namespace (shop)"},
			{user: alice, ns: "hc", profile: "missing", wantErr: "no MirrordClusterProfile of that name"},
		} {
			c, err := versioned.NewForConfig(s.Impersonate(tc.user))
			if err != nil {
				t.Fatal(err)
			}
			got, err := clisession.ApplyProfile(ctx, c, tc.ns, mirrordv1alpha1.Features{Profile: tc.profile})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("%s applying %s in %s: %v, want %q", tc.user, tc.profile, tc.ns, err, tc.wantErr)
				}
				continue
			}
			if err != nil || !tc.check(got) || got.Profile != tc.profile {
				t.Errorf("%s applying %s: %+v, %v", tc.user, tc.profile, got.Network, err)
			}
		}
	})

	if _, err := s.Mirrord.MirrordV1alpha1().MirrordPolicies("hc").Create(ctx, &mirrordv1alpha1.MirrordPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "profiled"},
		Spec:       mirrordv1alpha1.PolicySpec{TargetPath: "deploy/web", RequiredProfiles: []string{"no-incoming", "hc/strict"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	runController(t, s)
	for name, tc := range map[string]struct {
		target, profile string
		mode            mirrordv1alpha1.IncomingMode
		wantReason      string // "" = admitted (PolicyAllowed)
		wantMsg         string
	}{
		"a session that follows its cluster profile":   {target: "api", profile: "no-incoming", mode: mirrordv1alpha1.IncomingModeOff},
		"one that does not":                            {target: "api", profile: "no-incoming", mode: mirrordv1alpha1.IncomingModeMirror, wantReason: mirrordv1alpha1.ReasonProfileNotFollowed, wantMsg: "(incoming off, not mirror)"},
		"a namespace profile's two adjustments":        {target: "api", profile: "hc/strict", mode: mirrordv1alpha1.IncomingModeSteal, wantReason: mirrordv1alpha1.ReasonProfileNotFollowed, wantMsg: "outgoing off, not remote"},
		"a profile that does not exist":                {target: "api", profile: "gone", mode: mirrordv1alpha1.IncomingModeOff, wantReason: mirrordv1alpha1.ReasonProfileNotFollowed, wantMsg: "no MirrordClusterProfile of that name"},
		"a policy requires a profile, none is named":   {target: "web", mode: mirrordv1alpha1.IncomingModeOff, wantReason: mirrordv1alpha1.ReasonBlockedByPolicy, wantMsg: "must follow one of the profiles no-incoming, hc/strict"},
		"a policy requires a profile, one is followed": {target: "web", profile: "no-incoming", mode: mirrordv1alpha1.IncomingModeOff},
	} {
		t.Run(name, func(t *testing.T) {
			x := session("hc", "Deployment", tc.target, "hc")
			x.Spec.Features.Profile = tc.profile
			x.Spec.Features.Network.Incoming.Mode = tc.mode
			created, err := create(t, s, alice, x)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the session's verdict", func(ctx context.Context) error {
				got, err := s.Mirrord.MirrordV1alpha1().MirrordSessions("hc").Get(ctx, created.Name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if meta.FindStatusCondition(got.Status.Conditions, mirrordv1alpha1.ConditionAuthorized) == nil {
					return fmt.Errorf("not admitted yet (phase %q)", got.Status.Phase)
				}
				c := meta.FindStatusCondition(got.Status.Conditions, mirrordv1alpha1.ConditionPolicyAllowed)
				if tc.wantReason == "" {
					// Admitted: what follows (no such deployment here) is not the profile's doing.
					if c == nil || c.Status != metav1.ConditionTrue {
						return fmt.Errorf("PolicyAllowed %+v", c)
					}
					return nil
				}
				if got.Status.Phase != mirrordv1alpha1.SessionFailed || c == nil || c.Reason != tc.wantReason || !strings.Contains(c.Message, tc.wantMsg) {
					return fmt.Errorf("phase %s, PolicyAllowed %+v", got.Status.Phase, c)
				}
				return nil
			})
		})
	}
}
