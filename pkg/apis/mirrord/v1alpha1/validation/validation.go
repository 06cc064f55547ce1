// Package validation checks a session's features the one way every part of kubectl-mirrord
// reads them: the CLI before it creates a session, a member's controller before it joins an
// agent (with its policies applied), the agent at each connection's handshake. Errors name
// the field, Kubernetes' way (field.ErrorList): feature.network.incoming.httpFilter.header.
package validation

import (
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/httpfilter"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/profile"
)

// ValidateFeatures checks f, found at p (field.NewPath("feature") for a config file's or a
// spec's features).
func ValidateFeatures(f *mirrordv1alpha1.Features, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if f.Profile != "" {
		if _, err := profile.ParseRef(f.Profile); err != nil {
			errs = append(errs, field.Invalid(p.Child("profile"), f.Profile, err.Error()))
		}
	}
	errs = append(errs, ValidateEnv(&f.Env, p.Child("env"))...)
	errs = append(errs, validateFS(&f.FS, p.Child("fs"))...)
	errs = append(errs, validateIncoming(&f.Network.Incoming, p.Child("network", "incoming"))...)
	out := f.Network.Outgoing
	if out.Filter != nil && len(out.Filter.Local) > 0 && len(out.Filter.Remote) > 0 {
		errs = append(errs, field.Invalid(p.Child("network", "outgoing", "filter"), "local and remote",
			"give local (what goes from this machine) or remote (what goes through the target), not both"))
	}
	if d := f.Network.DNS.Filter; d != nil && len(d.Local) > 0 && len(d.Remote) > 0 {
		errs = append(errs, field.Invalid(p.Child("network", "dns", "filter"), "local and remote",
			"give local (names resolved on this machine) or remote (names resolved through the target), not both"))
	}
	return errs
}

// ValidateEnv checks the env feature's patterns (* and ?). Include and exclude may both be
// set: a policy's excludes are added to a user's includes.
func ValidateEnv(f *mirrordv1alpha1.EnvFeature, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, name := range slices.Sorted(maps.Keys(f.Mapping)) {
		errs = append(errs, validateRegex(name, p.Child("mapping").Key(name))...)
	}
	for i, name := range f.Unset {
		if name == "" || strings.Contains(name, "=") {
			errs = append(errs, field.Invalid(p.Child("unset").Index(i), name, "not a variable name"))
		}
	}
	for _, l := range []struct {
		name     string
		patterns []string
	}{{"include", f.Include}, {"exclude", f.Exclude}} {
		for i, pattern := range l.patterns {
			if _, err := path.Match(pattern, ""); err != nil {
				errs = append(errs, field.Invalid(p.Child(l.name).Index(i), pattern, "not a valid pattern (use * and ?): "+err.Error()))
			}
		}
	}
	return errs
}

// fsModes are the fs feature's modes ("" is read).
var fsModes = []string{string(mirrordv1alpha1.FSModeLocal), string(mirrordv1alpha1.FSModeRead), string(mirrordv1alpha1.FSModeWrite)}

func validateFS(f *mirrordv1alpha1.FSFeature, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch f.Mode {
	case "", mirrordv1alpha1.FSModeLocal, mirrordv1alpha1.FSModeRead, mirrordv1alpha1.FSModeWrite:
	default:
		errs = append(errs, field.NotSupported(p.Child("mode"), f.Mode, fsModes))
	}
	for _, l := range []struct {
		name  string
		exprs []string
	}{{"readOnly", f.ReadOnly}, {"readWrite", f.ReadWrite}, {"local", f.Local}, {"notFound", f.NotFound},
		{"policyReadOnly", f.PolicyReadOnly}, {"policyLocal", f.PolicyLocal}} {
		errs = append(errs, validateRegexes(l.exprs, p.Child(l.name))...)
	}
	return errs
}

var incomingModes = []string{string(mirrordv1alpha1.IncomingModeMirror), string(mirrordv1alpha1.IncomingModeSteal), string(mirrordv1alpha1.IncomingModeOff)}

func validateIncoming(in *mirrordv1alpha1.IncomingFeature, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch in.Mode {
	case "", mirrordv1alpha1.IncomingModeMirror, mirrordv1alpha1.IncomingModeSteal, mirrordv1alpha1.IncomingModeOff:
	default:
		errs = append(errs, field.NotSupported(p.Child("mode"), in.Mode, incomingModes))
	}
	for _, l := range []struct {
		name  string
		ports []int32
	}{{"ports", in.Ports}, {"ignorePorts", in.IgnorePorts}} {
		for i, port := range l.ports {
			errs = append(errs, validatePort(port, p.Child(l.name).Index(i))...)
		}
	}
	for i, m := range in.PortMapping {
		errs = append(errs, validatePort(m.Remote, p.Child("portMapping").Index(i).Child("remote"))...)
		errs = append(errs, validatePort(m.Local, p.Child("portMapping").Index(i).Child("local"))...)
	}
	if _, err := httpfilter.Compile(in.HTTPFilter); err != nil {
		for _, fe := range httpfilter.Errors(err) {
			errs = append(errs, field.Invalid(p.Child("httpFilter", fe.Field), fe.Value, fe.Reason))
		}
	}
	return errs
}

func validatePort(port int32, p *field.Path) field.ErrorList {
	if port < 1 || port > 65535 {
		return field.ErrorList{field.Invalid(p, port, "ports are 1 to 65535")}
	}
	return nil
}

func validateRegexes(exprs []string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, e := range exprs {
		errs = append(errs, validateRegex(e, p.Index(i))...)
	}
	return errs
}

func validateRegex(expr string, p *field.Path) field.ErrorList {
	if _, err := regexp.Compile(expr); err != nil {
		msg := "not a valid regular expression: " + err.Error()
		if strings.Contains(expr, "(?!") || strings.Contains(expr, "(?=") || strings.Contains(expr, "(?<") {
			msg += "; look-arounds are not supported here (RE2 syntax; HTTP filters take them): match what you want instead"
		}
		return field.ErrorList{field.Invalid(p, expr, msg)}
	}
	return nil
}
