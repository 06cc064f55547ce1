// Package policy decides whether a session may do what it asks on a target, given the
// MirrordPolicy objects of the target's namespace and the cluster's MirrordClusterPolicy
// objects. The Primary checks for fast feedback; every member checks again as the authority.
package policy

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	mirrordlisters "github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/listers/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/regex"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

// Policy is one MirrordPolicy or MirrordClusterPolicy, reduced to what matters here.
type Policy struct {
	// Ref names the policy in messages: "MirrordPolicy shop/no-steal".
	Ref  string
	Spec mirrordv1alpha1.PolicySpec
}

// FromNamespaced and FromCluster turn listed objects into Policies, sorted by Ref so the
// first violation reported is stable.
func FromNamespaced(ps []*mirrordv1alpha1.MirrordPolicy) []Policy {
	out := make([]Policy, 0, len(ps))
	for _, p := range ps {
		out = append(out, Policy{Ref: "MirrordPolicy " + p.Namespace + "/" + p.Name, Spec: p.Spec})
	}
	return sorted(out)
}

// FromCluster: see FromNamespaced.
func FromCluster(ps []*mirrordv1alpha1.MirrordClusterPolicy) []Policy {
	out := make([]Policy, 0, len(ps))
	for _, p := range ps {
		out = append(out, Policy{Ref: "MirrordClusterPolicy " + p.Name, Spec: p.Spec})
	}
	return sorted(out)
}

func sorted(ps []Policy) []Policy {
	sort.Slice(ps, func(i, j int) bool { return ps[i].Ref < ps[j].Ref })
	return ps
}

// Lister reads the policies that cover a namespace: its MirrordPolicies and every
// MirrordClusterPolicy.
func Lister(ns mirrordlisters.MirrordPolicyLister, cluster mirrordlisters.MirrordClusterPolicyLister) func(namespace string) ([]Policy, error) {
	return func(namespace string) ([]Policy, error) {
		nsPolicies, err := ns.MirrordPolicies(namespace).List(labels.Everything())
		if err != nil {
			return nil, err
		}
		clusterPolicies, err := cluster.List(labels.Everything())
		if err != nil {
			return nil, err
		}
		return append(FromNamespaced(nsPolicies), FromCluster(clusterPolicies)...), nil
	}
}

// Violation says which policy blocks a session and why.
type Violation struct {
	Policy string
	Reason string
}

func (v *Violation) Error() string { return fmt.Sprintf("blocked by %s: %s", v.Policy, v.Reason) }

// Applies reports whether p covers the target, whose workload carries targetLabels.
func Applies(p mirrordv1alpha1.PolicySpec, t mirrordv1alpha1.Target, targetLabels map[string]string) (bool, error) {
	if p.TargetPath != "" {
		pattern := normalizePath(p.TargetPath)
		noContainer := t
		noContainer.Container = ""
		ok, err := path.Match(pattern, target.String(noContainer))
		if err != nil {
			return false, fmt.Errorf("targetPath %q is not a valid glob: %w", p.TargetPath, err)
		}
		if !ok {
			return false, nil
		}
	}
	if p.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(p.Selector)
		if err != nil {
			return false, fmt.Errorf("selector: %w", err)
		}
		if !sel.Matches(labels.Set(targetLabels)) {
			return false, nil
		}
	}
	return true, nil
}

// normalizePath lets a policy name kinds the way users write them (deploy/api*).
func normalizePath(p string) string {
	kind, rest, ok := strings.Cut(p, "/")
	if !ok {
		return p
	}
	if t, err := target.Parse(kind+"/x", "", ""); err == nil {
		return strings.ToLower(string(t.Kind)) + "/" + rest
	}
	return p
}

// Check returns the first violation of the session's features by the policies that apply to
// the target, or nil. A policy that cannot be evaluated blocks: failing open would let a
// typo in a policy disable it.
func Check(ps []Policy, t mirrordv1alpha1.Target, targetLabels map[string]string, f mirrordv1alpha1.Features) *Violation {
	for _, p := range ps {
		ok, err := Applies(p.Spec, t, targetLabels)
		if err != nil {
			return &Violation{Policy: p.Ref, Reason: "the policy is invalid (" + err.Error() + "); an admin must fix it"}
		}
		if !ok {
			continue
		}
		if reason := blocked(p.Spec, f); reason != "" {
			return &Violation{Policy: p.Ref, Reason: reason}
		}
	}
	return nil
}

func blocked(p mirrordv1alpha1.PolicySpec, f mirrordv1alpha1.Features) string {
	in := f.Network.Incoming
	steal := in.Mode == mirrordv1alpha1.IncomingModeSteal
	hf := in.HTTPFilter
	filtered := hf.Tests()
	for _, b := range p.Block {
		switch b {
		case mirrordv1alpha1.BlockSteal:
			if steal {
				return "stealing traffic is blocked; use mirror mode (--incoming mirror)"
			}
		case mirrordv1alpha1.BlockStealWithoutFilter:
			if steal && !filtered {
				return "stealing without an HTTP filter is blocked; add --http-header-filter or --http-path-filter"
			}
		case mirrordv1alpha1.BlockMirror:
			if in.Mode == "" || in.Mode == mirrordv1alpha1.IncomingModeMirror {
				return "mirroring traffic is blocked; use --incoming off"
			}
		case mirrordv1alpha1.BlockEnv:
			if !f.Env.Disabled {
				return "reading the target's environment is blocked; use --no-env"
			}
		case mirrordv1alpha1.BlockFS:
			// Local mode with remote overrides still reads the target (--fs-read-only '.*').
			if f.FS.ReadsRemotely() {
				return "reading the target's files is blocked; use --fs-mode local without --fs-read-only or --fs-read-write"
			}
		case mirrordv1alpha1.BlockOutgoing:
			if enabled(f.Network.Outgoing.TCP) || enabled(f.Network.Outgoing.UDP) {
				return "outgoing traffic from the target is blocked; use --no-outgoing"
			}
		case mirrordv1alpha1.BlockDBBranches:
			if len(f.DBBranches) > 0 {
				return dbBranchesBlocked
			}
		}
	}
	if len(p.RequiredProfiles) > 0 && !slices.Contains(p.RequiredProfiles, f.Profile) {
		return fmt.Sprintf("sessions on this target must follow one of the profiles %s: name one with `profile` in the config file", strings.Join(p.RequiredProfiles, ", "))
	}
	if p.RequiredHeaderFilter != "" && steal {
		re, err := regex.Compile(p.RequiredHeaderFilter)
		if err != nil {
			return fmt.Sprintf("its requiredHeaderFilter %q is not a valid regex; an admin must fix it", p.RequiredHeaderFilter)
		}
		if !requiredHeaderMatches(hf, re) {
			return fmt.Sprintf("stealing requires an HTTP header filter matching %q", p.RequiredHeaderFilter)
		}
	}
	return ""
}

func enabled(b *bool) bool { return b == nil || *b }

const dbBranchesBlocked = "database branches of this target are blocked; remove feature.db_branches from the config file"

// CheckBranch returns the first violation, by the policies that apply to the target, of a
// database branch of it that copies as mode says, or nil.
func CheckBranch(ps []Policy, t mirrordv1alpha1.Target, targetLabels map[string]string, mode mirrordv1alpha1.DBCopyMode) *Violation {
	for _, p := range ps {
		ok, err := Applies(p.Spec, t, targetLabels)
		if err != nil {
			return &Violation{Policy: p.Ref, Reason: "the policy is invalid (" + err.Error() + "); an admin must fix it"}
		}
		if !ok {
			continue
		}
		for _, b := range p.Spec.Block {
			switch {
			case b == mirrordv1alpha1.BlockDBBranches:
				return &Violation{Policy: p.Ref, Reason: dbBranchesBlocked}
			case b == mirrordv1alpha1.BlockDBBranchesAll && mode == mirrordv1alpha1.DBCopyAll:
				return &Violation{Policy: p.Ref, Reason: "branches copying every row of this target's database are blocked; use copy mode schema, with the tables you need and their filters"}
			}
		}
	}
	return nil
}

// requiredHeaderMatches reports whether a header filter every request must pass (the
// filter's own, or one of allOf's) matches a policy's requiredHeaderFilter. One inside anyOf
// does not count: a request may pass by another term.
func requiredHeaderMatches(hf *mirrordv1alpha1.HTTPFilter, re regex.Regexp) bool {
	if hf == nil {
		return false
	}
	for _, t := range append([]mirrordv1alpha1.HTTPFilterTerm{hf.Top()}, hf.AllOf...) {
		if t.Header != "" && re.MatchString(t.Header) {
			return true
		}
	}
	return false
}

// Restrict applies the non-blocking parts of the policies that cover the target (forced env
// excludes, fs overrides, required header filters) to a copy of the session's features. What
// it adds only narrows: a policy's required header filter joins a steal's filter as a
// required header, so the steal takes only requests the policy's pattern matches, whatever
// the session's own filter says (`x-user: a|.*` passes Check's look at its text).
func Restrict(ps []Policy, t mirrordv1alpha1.Target, targetLabels map[string]string, f mirrordv1alpha1.Features) mirrordv1alpha1.Features {
	out := *f.DeepCopy()
	for _, p := range ps {
		if ok, err := Applies(p.Spec, t, targetLabels); err != nil || !ok {
			continue
		}
		if p.Spec.Env != nil {
			out.Env.Exclude = append(out.Env.Exclude, p.Spec.Env.Exclude...)
		}
		if in := &out.Network.Incoming; p.Spec.RequiredHeaderFilter != "" && in.Mode == mirrordv1alpha1.IncomingModeSteal {
			if in.HTTPFilter == nil {
				in.HTTPFilter = &mirrordv1alpha1.HTTPFilter{}
			}
			in.HTTPFilter.RequiredHeaders = append(in.HTTPFilter.RequiredHeaders, p.Spec.RequiredHeaderFilter)
		}
		if p.Spec.FS != nil {
			// As the policy's own rules, which the agent applies before the session's.
			out.FS.PolicyReadOnly = append(out.FS.PolicyReadOnly, p.Spec.FS.ReadOnly...)
			out.FS.PolicyLocal = append(out.FS.PolicyLocal, p.Spec.FS.Local...)
			out.FS.NotFound = append(out.FS.NotFound, p.Spec.FS.NotFound...)
		}
		if slices.Contains(p.Spec.Block, mirrordv1alpha1.BlockFS) {
			// Check refuses a session that asks for remote files; this is the same for what
			// reaches the agent, whatever asked.
			out.FS.Mode, out.FS.ReadOnly, out.FS.ReadWrite = mirrordv1alpha1.FSModeLocal, nil, nil
		}
	}
	return out
}
