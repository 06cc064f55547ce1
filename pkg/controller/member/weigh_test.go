package member

import (
	"slices"
	"strings"
	"testing"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/policy"
)

func TestWeigh(t *testing.T) {
	target := mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: "api", Namespace: "shop"}
	steal := mirrordv1alpha1.Features{Network: mirrordv1alpha1.NetworkFeature{Incoming: mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeSteal}}}
	noSteal := policy.Policy{Ref: "MirrordPolicy shop/no-steal", Spec: mirrordv1alpha1.PolicySpec{Block: []mirrordv1alpha1.BlockedFeature{mirrordv1alpha1.BlockSteal}}}
	hideSecrets := policy.Policy{Ref: "MirrordPolicy shop/secrets", Spec: mirrordv1alpha1.PolicySpec{Env: &mirrordv1alpha1.PolicyEnv{Exclude: []string{"*_SECRET"}}}}
	resolved := resolution{Found: true, Reason: mirrordv1alpha1.ReasonResolved}
	for name, tc := range map[string]struct {
		features  mirrordv1alpha1.Features
		res       resolution
		policies  []policy.Policy
		blocked   string // in the violation
		terminal  string // the resolution's reason when the session cannot work here
		envHidden []string
	}{
		"no policy":                   {features: steal, res: resolved},
		"a policy blocks it":          {features: steal, res: resolved, policies: []policy.Policy{noSteal}, blocked: "no-steal"},
		"a policy narrows it":         {features: steal, res: resolved, policies: []policy.Policy{hideSecrets}, envHidden: []string{"*_SECRET"}},
		"a policy that does not bite": {res: resolved, policies: []policy.Policy{noSteal}},
		"features no agent serves": {
			features: mirrordv1alpha1.Features{FS: mirrordv1alpha1.FSFeature{Mode: "everything"}}, res: resolved, terminal: mirrordv1alpha1.ReasonInvalidFeatures,
		},
		"refused here already: its reason stays": {
			features: mirrordv1alpha1.Features{FS: mirrordv1alpha1.FSFeature{Mode: "everything"}},
			res:      resolution{Reason: mirrordv1alpha1.ReasonNamespaceExcluded, Terminal: true, refused: true}, terminal: mirrordv1alpha1.ReasonNamespaceExcluded,
		},
	} {
		t.Run(name, func(t *testing.T) {
			got := weigh(mirrordv1alpha1.MirrordClusterSessionSpec{Target: target, Features: tc.features}, tc.res, tc.policies)
			if (got.violation == nil) != (tc.blocked == "") || (got.violation != nil && !strings.Contains(got.violation.Error(), tc.blocked)) {
				t.Errorf("violation %v, want %q", got.violation, tc.blocked)
			}
			if got.res.Terminal != (tc.terminal != "") || (tc.terminal != "" && got.res.Reason != tc.terminal) {
				t.Errorf("resolution %+v, want terminal %q", got.res, tc.terminal)
			}
			if !slices.Equal(got.features.Env.Exclude, tc.envHidden) {
				t.Errorf("env excludes %v, want %v", got.features.Env.Exclude, tc.envHidden)
			}
		})
	}
}
