package profile

import (
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func adj(changes ...mirrordv1alpha1.FeatureChange) []mirrordv1alpha1.FeatureAdjustment {
	var out []mirrordv1alpha1.FeatureAdjustment
	for _, c := range changes {
		out = append(out, mirrordv1alpha1.FeatureAdjustment{Change: c})
	}
	return out
}

func TestParseRef(t *testing.T) {
	for in, want := range map[string]Ref{
		"team-default":  {Name: "team-default"},
		"shop/checkout": {Namespace: "shop", Name: "checkout"},
	} {
		got, err := ParseRef(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseRef(%q) = %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "Shop/x", "a/b/c", "shop/", "/x", "under_score"} {
		if _, err := ParseRef(in); err == nil || !strings.Contains(err.Error(), "profile") {
			t.Errorf("ParseRef(%q) = %v, want an error", in, err)
		}
	}
}

func TestApplyAndFollows(t *testing.T) {
	steal := mirrordv1alpha1.Features{}
	steal.Network.Incoming = mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeSteal, HTTPFilter: &mirrordv1alpha1.HTTPFilter{Header: "x"}}
	filtered := mirrordv1alpha1.Features{}
	filtered.Network.Outgoing.Filter = &mirrordv1alpha1.OutgoingFilter{Local: []string{":53"}}
	filtered.Network.DNS.Filter = &mirrordv1alpha1.OutgoingFilter{Local: []string{"db"}}
	for name, tc := range map[string]struct {
		adjs    []mirrordv1alpha1.FeatureAdjustment
		in      mirrordv1alpha1.Features
		check   func(mirrordv1alpha1.Features) bool
		follows string // Follows(adjs, in): "" when in already follows
	}{
		"nothing": {in: steal, check: func(f mirrordv1alpha1.Features) bool { return f.Network.Incoming.HTTPFilter != nil }},
		"mirror drops filter": {adjs: adj("incoming-mirror"), in: steal, follows: "incoming mirror, not steal", check: func(f mirrordv1alpha1.Features) bool {
			return f.Network.Incoming.Mode == "mirror" && f.Network.Incoming.HTTPFilter == nil
		}},
		"steal kept":      {adjs: adj("incoming-steal"), in: steal, check: func(f mirrordv1alpha1.Features) bool { return f.Network.Incoming.HTTPFilter.Header == "x" }},
		"the last wins":   {adjs: adj("incoming-off", "incoming-steal"), in: steal, check: func(f mirrordv1alpha1.Features) bool { return f.Network.Incoming.Mode == "steal" }},
		"default mirror":  {adjs: adj("incoming-mirror"), in: mirrordv1alpha1.Features{}, check: func(f mirrordv1alpha1.Features) bool { return f.Network.Incoming.Mode == "mirror" }},
		"off from mirror": {adjs: adj("incoming-off"), in: mirrordv1alpha1.Features{}, follows: "incoming off, not mirror", check: func(f mirrordv1alpha1.Features) bool { return f.Network.Incoming.Mode == "off" }},
		"dns off":         {adjs: adj("dns-off"), in: filtered, follows: "dns off, not filtered", check: func(f mirrordv1alpha1.Features) bool { return f.Network.DNS.Disabled && f.Network.DNS.Filter == nil }},
		"dns remote":      {adjs: adj("dns-remote"), in: filtered, follows: "dns remote, not filtered", check: func(f mirrordv1alpha1.Features) bool { return !f.Network.DNS.Disabled && f.Network.DNS.Filter == nil }},
		"outgoing remote": {adjs: adj("outgoing-remote"), in: filtered, follows: "outgoing remote, not partly remote", check: func(f mirrordv1alpha1.Features) bool {
			return *f.Network.Outgoing.TCP && *f.Network.Outgoing.UDP && f.Network.Outgoing.Filter == nil
		}},
		"outgoing off": {adjs: adj("outgoing-off"), in: mirrordv1alpha1.Features{}, follows: "outgoing off, not remote", check: func(f mirrordv1alpha1.Features) bool {
			return !*f.Network.Outgoing.TCP && !*f.Network.Outgoing.UDP
		}},
		"outgoing nil is remote": {adjs: adj("outgoing-remote"), in: mirrordv1alpha1.Features{}, check: func(f mirrordv1alpha1.Features) bool { return *f.Network.Outgoing.TCP }},
		"several differences": {adjs: adj("incoming-off", "dns-off", "outgoing-off"), in: mirrordv1alpha1.Features{}, follows: "incoming off, not mirror; dns off, not remote; outgoing off, not remote",
			check: func(f mirrordv1alpha1.Features) bool { return f.Network.DNS.Disabled }},
	} {
		t.Run(name, func(t *testing.T) {
			got := Apply(tc.adjs, tc.in)
			if !tc.check(got) {
				t.Errorf("Apply = %+v", got.Network)
			}
			if why := Follows(tc.adjs, tc.in); why != tc.follows {
				t.Errorf("Follows(input) = %q, want %q", why, tc.follows)
			}
			if why := Follows(tc.adjs, got); why != "" {
				t.Errorf("Follows(Apply(input)) = %q, want it to follow", why)
			}
		})
	}
	// Features a profile does not touch stay.
	f := mirrordv1alpha1.Features{Profile: "p"}
	f.Env.Include = []string{"A"}
	f.Network.Outgoing.TCP = ptr.To(false)
	if got := Apply(adj("incoming-off"), f); got.Profile != "p" || got.Env.Include[0] != "A" || *got.Network.Outgoing.TCP {
		t.Errorf("Apply changed what it does not set: %+v", got)
	}
}

func TestResolve(t *testing.T) {
	team := adj("incoming-off")
	get := func(r Ref) ([]mirrordv1alpha1.FeatureAdjustment, error) {
		switch r {
		case Ref{Name: "team"}, Ref{Namespace: "shop", Name: "strict"}:
			return team, nil
		case Ref{Name: "locked"}:
			return nil, apierrors.NewForbidden(schema.GroupResource{Resource: "mirrordclusterprofiles"}, "locked", errors.New("no"))
		}
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "x"}, r.Name)
	}
	for _, tc := range []struct{ value, ns, wantErr string }{
		{value: "team", ns: "shop"},
		{value: "shop/strict", ns: "shop"},
		{value: "shop/strict", ns: "hc", wantErr: "profile shop/strict: a MirrordProfile must be in the session's namespace (hc): run in -n shop"},
		{value: "gone", ns: "shop", wantErr: "profile gone: no MirrordClusterProfile of that name on the Primary (kubectl get mirrordclusterprofiles)"},
		{value: "shop/gone", ns: "shop", wantErr: "no MirrordProfile of that name on the Primary (kubectl get mirrordprofiles -n shop)"},
		{value: "locked", ns: "shop", wantErr: "profile locked: "},
		{value: "Bad", ns: "shop", wantErr: `profile "Bad"`},
	} {
		_, adjs, err := Resolve(tc.value, tc.ns, get)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Resolve(%q in %s) = %v, want %q", tc.value, tc.ns, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(adjs) != 1 {
			t.Errorf("Resolve(%q in %s) = %v, %v", tc.value, tc.ns, adjs, err)
		}
	}
	if _, _, err := Resolve("locked", "shop", get); !apierrors.IsForbidden(err) {
		t.Errorf("a forbidden read is no longer forbidden once wrapped: %v", err)
	}
}
