package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func steal(header string) mirrordv1alpha1.Features {
	f := mirrordv1alpha1.Features{}
	f.Network.Incoming.Mode = mirrordv1alpha1.IncomingModeSteal
	if header != "" {
		f.Network.Incoming.HTTPFilter = &mirrordv1alpha1.HTTPFilter{Header: header}
	}
	return f
}

func stealWith(hf mirrordv1alpha1.HTTPFilter) mirrordv1alpha1.Features {
	f := steal("")
	f.Network.Incoming.HTTPFilter = &hf
	return f
}

func TestCheck(t *testing.T) {
	api := mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: "api", Namespace: "shop", Container: "main"}
	appLabels := map[string]string{"app": "api"}
	mirror := mirrordv1alpha1.Features{}
	mirror.FS.Mode = mirrordv1alpha1.FSModeLocal
	mirror.Env.Disabled = true
	mirror.Network.Outgoing.TCP, mirror.Network.Outgoing.UDP = ptr.To(false), ptr.To(false)

	cases := map[string]struct {
		spec       mirrordv1alpha1.PolicySpec
		features   mirrordv1alpha1.Features
		wantReason string // "" = allowed
	}{
		"steal blocked for all":         {spec: mirrordv1alpha1.PolicySpec{Block: []mirrordv1alpha1.BlockedFeature{"steal"}}, features: steal(""), wantReason: "stealing traffic is blocked"},
		"steal blocked, mirror passes":  {spec: mirrordv1alpha1.PolicySpec{Block: []mirrordv1alpha1.BlockedFeature{"steal"}}, features: mirror},
		"kubectl-style path matches":    {spec: mirrordv1alpha1.PolicySpec{TargetPath: "deploy/ap*", Block: []mirrordv1alpha1.BlockedFeature{"steal"}}, features: steal(""), wantReason: "blocked"},
		"other path ignored":            {spec: mirrordv1alpha1.PolicySpec{TargetPath: "deployment/web", Block: []mirrordv1alpha1.BlockedFeature{"steal"}}, features: steal("")},
		"selector matches":              {spec: mirrordv1alpha1.PolicySpec{Selector: &metav1.LabelSelector{MatchLabels: appLabels}, Block: []mirrordv1alpha1.BlockedFeature{"steal"}}, features: steal(""), wantReason: "blocked"},
		"selector misses":               {spec: mirrordv1alpha1.PolicySpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}, Block: []mirrordv1alpha1.BlockedFeature{"steal"}}, features: steal("")},
		"unfiltered steal blocked":      {spec: mirrordv1alpha1.PolicySpec{Block: []mirrordv1alpha1.BlockedFeature{"steal-without-filter"}}, features: steal(""), wantReason: "without an HTTP filter"},
		"filtered steal allowed":        {spec: mirrordv1alpha1.PolicySpec{Block: []mirrordv1alpha1.BlockedFeature{"steal-without-filter"}}, features: steal("x-user: a")},
		"mirror blocked (default mode)": {spec: mirrordv1alpha1.PolicySpec{Block: []mirrordv1alpha1.BlockedFeature{"mirror"}}, features: mirrordv1alpha1.Features{}, wantReason: "mirroring"},
		"env blocked":                   {spec: mirrordv1alpha1.PolicySpec{Block: []mirrordv1alpha1.BlockedFeature{"env"}}, features: steal("x"), wantReason: "environment"},
		"fs blocked, local mode reading remotely anyway": {spec: mirrordv1alpha1.PolicySpec{Block: []mirrordv1alpha1.BlockedFeature{"fs"}}, features: func() mirrordv1alpha1.Features {
			f := mirror
			f.FS = mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeLocal, ReadOnly: []string{".*"}}
			return f
		}(), wantReason: "without --fs-read-only"},
		"fs blocked, default read":             {spec: mirrordv1alpha1.PolicySpec{Block: []mirrordv1alpha1.BlockedFeature{"fs"}}, features: steal("x"), wantReason: "files"},
		"outgoing blocked, nil means on":       {spec: mirrordv1alpha1.PolicySpec{Block: []mirrordv1alpha1.BlockedFeature{"outgoing"}}, features: steal("x"), wantReason: "outgoing"},
		"everything off passes every block":    {spec: mirrordv1alpha1.PolicySpec{Block: []mirrordv1alpha1.BlockedFeature{"env", "fs", "outgoing", "steal"}}, features: mirror},
		"required header missing":              {spec: mirrordv1alpha1.PolicySpec{RequiredHeaderFilter: "^x-user: .+"}, features: steal(""), wantReason: "requires an HTTP header filter"},
		"required header mismatch":             {spec: mirrordv1alpha1.PolicySpec{RequiredHeaderFilter: "^x-user: .+"}, features: steal("x-other: b"), wantReason: "requires"},
		"required header met":                  {spec: mirrordv1alpha1.PolicySpec{RequiredHeaderFilter: "^x-user: .+"}, features: steal("x-user: alice")},
		"required header irrelevant to mirror": {spec: mirrordv1alpha1.PolicySpec{RequiredHeaderFilter: "^x-user: .+"}, features: mirror},
		"invalid glob blocks":                  {spec: mirrordv1alpha1.PolicySpec{TargetPath: "deploy/[", Block: []mirrordv1alpha1.BlockedFeature{"steal"}}, features: mirror, wantReason: "policy is invalid"},
		"invalid required regex blocks":        {spec: mirrordv1alpha1.PolicySpec{RequiredHeaderFilter: "("}, features: steal("x"), wantReason: "not a valid regex"},
		"required header met in allOf":         {spec: mirrordv1alpha1.PolicySpec{RequiredHeaderFilter: "^x-user: .+"}, features: stealWith(mirrordv1alpha1.HTTPFilter{AllOf: []mirrordv1alpha1.HTTPFilterTerm{{Path: "/"}, {Header: "x-user: alice"}}})},
		"required header only in anyOf":        {spec: mirrordv1alpha1.PolicySpec{RequiredHeaderFilter: "^x-user: .+"}, features: stealWith(mirrordv1alpha1.HTTPFilter{AnyOf: []mirrordv1alpha1.HTTPFilterTerm{{Path: "/"}, {Header: "x-user: alice"}}}), wantReason: "requires"},
		"anyOf filters a steal":                {spec: mirrordv1alpha1.PolicySpec{Block: []mirrordv1alpha1.BlockedFeature{"steal-without-filter"}}, features: stealWith(mirrordv1alpha1.HTTPFilter{AnyOf: []mirrordv1alpha1.HTTPFilterTerm{{Path: "/a"}}})},
		"a body filter filters a steal":        {spec: mirrordv1alpha1.PolicySpec{Block: []mirrordv1alpha1.BlockedFeature{"steal-without-filter"}}, features: stealWith(mirrordv1alpha1.HTTPFilter{Body: &mirrordv1alpha1.JSONBodyFilter{Query: "$.u", Matches: "a"}})},
		"profile required, none named":         {spec: mirrordv1alpha1.PolicySpec{RequiredProfiles: []string{"team", "shop/strict"}}, features: mirror, wantReason: "must follow one of the profiles team, shop/strict"},
		"profile required, another named":      {spec: mirrordv1alpha1.PolicySpec{RequiredProfiles: []string{"team"}}, features: mirrordv1alpha1.Features{Profile: "other"}, wantReason: "profiles team"},
		"profile required and named":           {spec: mirrordv1alpha1.PolicySpec{RequiredProfiles: []string{"team", "shop/strict"}}, features: mirrordv1alpha1.Features{Profile: "shop/strict"}},
		"required headers alone do not":        {spec: mirrordv1alpha1.PolicySpec{Block: []mirrordv1alpha1.BlockedFeature{"steal-without-filter"}}, features: stealWith(mirrordv1alpha1.HTTPFilter{RequiredHeaders: []string{"x"}}), wantReason: "without an HTTP filter"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v := Check([]Policy{{Ref: "MirrordPolicy shop/p", Spec: tc.spec}}, api, appLabels, tc.features)
			switch {
			case tc.wantReason == "" && v != nil:
				t.Fatalf("want allowed, got %v", v)
			case tc.wantReason != "" && v == nil:
				t.Fatalf("want blocked (%q), got allowed", tc.wantReason)
			case v != nil && (!strings.Contains(v.Reason, tc.wantReason) || !strings.Contains(v.Error(), "MirrordPolicy shop/p")):
				t.Fatalf("got %q, want a reason containing %q naming the policy", v.Error(), tc.wantReason)
			}
		})
	}
}

func TestRestrict(t *testing.T) {
	tg := mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindPod, Name: "p", Namespace: "n"}
	ps := []Policy{
		{Ref: "a", Spec: mirrordv1alpha1.PolicySpec{Env: &mirrordv1alpha1.PolicyEnv{Exclude: []string{"SECRET_*"}}, FS: &mirrordv1alpha1.PolicyFS{NotFound: []string{"^/etc/secret"}}}},
		{Ref: "b", Spec: mirrordv1alpha1.PolicySpec{TargetPath: "pod/other", Env: &mirrordv1alpha1.PolicyEnv{Exclude: []string{"NOPE"}}}},
	}
	in := mirrordv1alpha1.Features{Env: mirrordv1alpha1.EnvFeature{Exclude: []string{"HOME"}}}
	got := Restrict(ps, tg, nil, in)
	if strings.Join(got.Env.Exclude, ",") != "HOME,SECRET_*" || strings.Join(got.FS.NotFound, ",") != "^/etc/secret" {
		t.Fatalf("Restrict = %+v", got)
	}
	if len(in.Env.Exclude) != 1 {
		t.Fatalf("Restrict changed its input: %v", in.Env.Exclude)
	}
}

// TestRestrictRequiredHeader: a policy's required header filter is enforced on what is
// stolen, not on the text of the session's filter.
func TestRestrictRequiredHeader(t *testing.T) {
	tg := mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: "api", Namespace: "shop"}
	ps := []Policy{
		{Ref: "a", Spec: mirrordv1alpha1.PolicySpec{RequiredHeaderFilter: "^X-User: .+"}},
		{Ref: "b", Spec: mirrordv1alpha1.PolicySpec{RequiredHeaderFilter: "^X-Env: dev$"}},
		{Ref: "c", Spec: mirrordv1alpha1.PolicySpec{TargetPath: "deploy/web", RequiredHeaderFilter: "^X-Web: .+"}},
	}
	for name, tc := range map[string]struct {
		in   mirrordv1alpha1.Features
		want *mirrordv1alpha1.HTTPFilter
	}{
		"a permissive filter gets every applying policy's pattern": {
			in:   steal("X-User: a|.*"),
			want: &mirrordv1alpha1.HTTPFilter{Header: "X-User: a|.*", RequiredHeaders: []string{"^X-User: .+", "^X-Env: dev$"}},
		},
		"a mirror is not filtered": {in: mirrordv1alpha1.Features{}, want: nil},
	} {
		t.Run(name, func(t *testing.T) {
			got := Restrict(ps, tg, nil, tc.in).Network.Incoming.HTTPFilter
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("httpFilter (-want,+got):\n%s", diff)
			}
			if f := tc.in.Network.Incoming.HTTPFilter; f != nil && len(f.RequiredHeaders) != 0 {
				t.Errorf("Restrict changed its input: %+v", f)
			}
		})
	}
}

// TestRestrictFS: a policy's file rules reach the agent as policy rules, which it applies
// before the session's own; a blocked fs is local whatever the session asked.
func TestRestrictFS(t *testing.T) {
	tg := mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: "api", Namespace: "shop"}
	for name, tc := range map[string]struct {
		policy mirrordv1alpha1.PolicySpec
		in     mirrordv1alpha1.FSFeature
		want   mirrordv1alpha1.FSFeature
	}{
		"rules go to the policy's lists": {
			policy: mirrordv1alpha1.PolicySpec{FS: &mirrordv1alpha1.PolicyFS{ReadOnly: []string{"^/etc/"}, Local: []string{"^/secrets/"}, NotFound: []string{"^/root/"}}},
			in:     mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeWrite, ReadWrite: []string{".*"}},
			want: mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeWrite, ReadWrite: []string{".*"}, NotFound: []string{"^/root/"},
				PolicyReadOnly: []string{"^/etc/"}, PolicyLocal: []string{"^/secrets/"}},
		},
		"a blocked fs is local": {
			policy: mirrordv1alpha1.PolicySpec{Block: []mirrordv1alpha1.BlockedFeature{mirrordv1alpha1.BlockFS}},
			in:     mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeLocal, ReadOnly: []string{".*"}, ReadWrite: []string{"^/data"}},
			want:   mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeLocal},
		},
	} {
		t.Run(name, func(t *testing.T) {
			got := Restrict([]Policy{{Ref: "p", Spec: tc.policy}}, tg, nil, mirrordv1alpha1.Features{FS: tc.in}).FS
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("fs (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestCheckBranch(t *testing.T) {
	api := mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: "api", Namespace: "shop"}
	pol := func(path string, block ...mirrordv1alpha1.BlockedFeature) []Policy {
		return []Policy{{Ref: "MirrordPolicy shop/db", Spec: mirrordv1alpha1.PolicySpec{TargetPath: path, Block: block}}}
	}
	for name, tc := range map[string]struct {
		ps   []Policy
		mode mirrordv1alpha1.DBCopyMode
		want string
	}{
		"branches blocked":             {ps: pol("", mirrordv1alpha1.BlockDBBranches), mode: mirrordv1alpha1.DBCopySchema, want: "database branches of this target are blocked"},
		"all blocked: schema passes":   {ps: pol("", mirrordv1alpha1.BlockDBBranchesAll), mode: mirrordv1alpha1.DBCopySchema},
		"all blocked: all refused":     {ps: pol("", mirrordv1alpha1.BlockDBBranchesAll), mode: mirrordv1alpha1.DBCopyAll, want: "copying every row"},
		"another target's policy":      {ps: pol("deploy/web", mirrordv1alpha1.BlockDBBranches), mode: mirrordv1alpha1.DBCopyAll},
		"other blocks do not concern":  {ps: pol("", mirrordv1alpha1.BlockSteal, mirrordv1alpha1.BlockEnv), mode: mirrordv1alpha1.DBCopyAll},
		"an invalid policy blocks too": {ps: pol("[", mirrordv1alpha1.BlockSteal), mode: mirrordv1alpha1.DBCopyEmpty, want: "invalid"},
	} {
		v := CheckBranch(tc.ps, api, nil, tc.mode)
		if (v == nil) != (tc.want == "") || (v != nil && !strings.Contains(v.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", name, v, tc.want)
		}
	}
	// A session naming a branch meets the same block at the Primary.
	f := mirrordv1alpha1.Features{DBBranches: []string{"branch-team"}}
	if v := Check(pol("", mirrordv1alpha1.BlockDBBranches), api, nil, f); v == nil || !strings.Contains(v.Error(), "database branches") {
		t.Errorf("a session with a branch under a db-branches block: %v", v)
	}
}
