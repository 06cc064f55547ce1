// Package profile applies and checks mirrord's profiles (MirrordProfile,
// MirrordClusterProfile): presets of session features that a config file names with
// `profile`. The CLI applies a profile's adjustments to the features it sends; the Primary
// refuses a session whose features do not follow the profile it names, so a policy that
// requires a profile holds (mirrord's own profiles are advice only).
package profile

import (
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// Ref names a profile: a MirrordClusterProfile (Namespace empty) or a MirrordProfile.
type Ref struct{ Namespace, Name string }

func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Name
	}
	return r.Namespace + "/" + r.Name
}

// Kind is the resource the reference names, for messages.
func (r Ref) Kind() string {
	if r.Namespace == "" {
		return "MirrordClusterProfile"
	}
	return "MirrordProfile"
}

// ParseRef reads mirrord's `profile` value: NAME (cluster-wide) or NAMESPACE/NAME.
func ParseRef(s string) (Ref, error) {
	var r Ref
	if ns, name, ok := strings.Cut(s, "/"); ok {
		r = Ref{Namespace: ns, Name: name}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return r, fmt.Errorf("profile %q: namespace %q: %s", s, ns, strings.Join(errs, "; "))
		}
	} else {
		r.Name = s
	}
	if errs := validation.IsDNS1123Subdomain(r.Name); len(errs) > 0 {
		return r, fmt.Errorf("profile %q: write NAME (a MirrordClusterProfile) or NAMESPACE/NAME (a MirrordProfile): %s", s, strings.Join(errs, "; "))
	}
	return r, nil
}

// Apply is f with adjs applied in order, as mirrord applies them.
func Apply(adjs []mirrordv1alpha1.FeatureAdjustment, f mirrordv1alpha1.Features) mirrordv1alpha1.Features {
	out := *f.DeepCopy()
	n := &out.Network
	for _, a := range adjs {
		switch a.Change {
		case mirrordv1alpha1.ChangeIncomingMirror:
			n.Incoming.Mode = mirrordv1alpha1.IncomingModeMirror
		case mirrordv1alpha1.ChangeIncomingSteal:
			n.Incoming.Mode = mirrordv1alpha1.IncomingModeSteal
		case mirrordv1alpha1.ChangeIncomingOff:
			n.Incoming.Mode = mirrordv1alpha1.IncomingModeOff
		case mirrordv1alpha1.ChangeDNSRemote:
			n.DNS = mirrordv1alpha1.DNSFeature{}
		case mirrordv1alpha1.ChangeDNSOff:
			n.DNS = mirrordv1alpha1.DNSFeature{Disabled: true}
		case mirrordv1alpha1.ChangeOutgoingRemote:
			n.Outgoing = mirrordv1alpha1.OutgoingFeature{TCP: ptr.To(true), UDP: ptr.To(true)}
		case mirrordv1alpha1.ChangeOutgoingOff:
			n.Outgoing = mirrordv1alpha1.OutgoingFeature{TCP: ptr.To(false), UDP: ptr.To(false)}
		}
	}
	if n.Incoming.Mode != mirrordv1alpha1.IncomingModeSteal {
		n.Incoming.HTTPFilter = nil // a filter only chooses what to steal
	}
	return out
}

// Follows says how f departs from what adjs set, "" when it follows them.
func Follows(adjs []mirrordv1alpha1.FeatureAdjustment, f mirrordv1alpha1.Features) string {
	want := Apply(adjs, f).Network
	got := f.Network
	var diffs []string
	if mode(want.Incoming.Mode) != mode(got.Incoming.Mode) {
		diffs = append(diffs, fmt.Sprintf("incoming %s, not %s", mode(want.Incoming.Mode), mode(got.Incoming.Mode)))
	} else if want.Incoming.HTTPFilter == nil && got.Incoming.HTTPFilter != nil {
		diffs = append(diffs, "no HTTP filter")
	}
	if want.DNS.Disabled != got.DNS.Disabled || (want.DNS.Filter == nil) != (got.DNS.Filter == nil) {
		diffs = append(diffs, "dns "+dns(want.DNS)+", not "+dns(got.DNS))
	}
	if on(want.Outgoing.TCP) != on(got.Outgoing.TCP) || on(want.Outgoing.UDP) != on(got.Outgoing.UDP) || (want.Outgoing.Filter == nil) != (got.Outgoing.Filter == nil) {
		diffs = append(diffs, "outgoing "+outgoing(want.Outgoing)+", not "+outgoing(got.Outgoing))
	}
	return strings.Join(diffs, "; ")
}

func mode(m mirrordv1alpha1.IncomingMode) mirrordv1alpha1.IncomingMode {
	if m == "" {
		return mirrordv1alpha1.IncomingModeMirror
	}
	return m
}

func on(b *bool) bool { return b == nil || *b }

func dns(d mirrordv1alpha1.DNSFeature) string {
	switch {
	case d.Disabled:
		return "off"
	case d.Filter != nil:
		return "filtered"
	}
	return "remote"
}

func outgoing(o mirrordv1alpha1.OutgoingFeature) string {
	switch {
	case !on(o.TCP) && !on(o.UDP):
		return "off"
	case on(o.TCP) && on(o.UDP) && o.Filter == nil:
		return "remote"
	}
	return "partly remote"
}

// Resolve reads a session's profile value in namespace: its reference, held to the rule that
// a MirrordProfile is the session's namespace's, and the adjustments get finds for it. A
// profile get does not find is an error saying so; get's other errors are wrapped.
func Resolve(value, namespace string, get func(Ref) ([]mirrordv1alpha1.FeatureAdjustment, error)) (Ref, []mirrordv1alpha1.FeatureAdjustment, error) {
	ref, err := ParseRef(value)
	if err != nil {
		return ref, nil, err
	}
	if ref.Namespace != "" && ref.Namespace != namespace {
		return ref, nil, fmt.Errorf("profile %s: a MirrordProfile must be in the session's namespace (%s): run in -n %s, or name a MirrordClusterProfile", ref, namespace, ref.Namespace)
	}
	adjs, err := get(ref)
	if apierrors.IsNotFound(err) {
		list := "kubectl get " + strings.ToLower(ref.Kind()) + "s"
		if ref.Namespace != "" {
			list += " -n " + ref.Namespace
		}
		return ref, nil, fmt.Errorf("profile %s: no %s of that name on the Primary (%s): check its spelling, or remove profile from the config file", ref, ref.Kind(), list)
	}
	if err != nil {
		return ref, nil, fmt.Errorf("profile %s: %w", ref, err)
	}
	return ref, adjs, nil
}
