package local

import (
	"maps"
	"regexp"
	"slices"
	"strings"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// sessionEnv is the environment the session gives the command on top of the developer's, in
// mirrord's order: the target's variables (filtered and overridden by its agent), then an
// env file's, then mapping, with override winning over both (the agent applied it; a file
// or a mapping must not undo it). Nothing here leaves this machine.
func sessionEnv(remote map[string]string, f mirrordv1alpha1.EnvFeature, file map[string]string) (map[string]string, error) {
	env := maps.Clone(remote)
	if env == nil {
		env = map[string]string{}
	}
	for k, v := range file {
		if _, overridden := f.Override[k]; !overridden {
			env[k] = v
		}
	}
	if len(f.Mapping) == 0 {
		return env, nil
	}
	type rule struct {
		re    *regexp.Regexp
		value string
	}
	var rules []rule
	for _, pattern := range slices.Sorted(maps.Keys(f.Mapping)) {
		re, err := regexp.Compile(pattern)
		if err != nil {
			return nil, err // validation refused it already
		}
		rules = append(rules, rule{re, f.Mapping[pattern]})
	}
	for name := range env {
		if _, overridden := f.Override[name]; overridden {
			continue
		}
		for _, r := range rules {
			if r.re.MatchString(name) {
				env[name] = r.value
				break
			}
		}
	}
	return env, nil
}

// unsetEnv drops from env (NAME=value entries) every variable unset names, whatever its case.
func unsetEnv(env []string, unset []string) []string {
	if len(unset) == 0 {
		return env
	}
	return slices.DeleteFunc(env, func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.ContainsFunc(unset, func(u string) bool { return strings.EqualFold(u, name) })
	})
}
