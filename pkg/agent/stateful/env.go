// Package stateful serves a session's stateful operations from inside the target container:
// its environment, its files (through /proc/PID/root), its DNS and outgoing connections
// (dialled inside its network namespace). The agent applies the session's features, with the
// member's policies already folded in, here: what they exclude never leaves the cluster.
package stateful

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// Env returns the environment of process pid (as the container started it, from
// /proc/PID/environ), filtered and overridden as f says.
func Env(procRoot string, pid int, f mirrordv1alpha1.EnvFeature) (map[string]string, error) {
	if f.Disabled {
		return map[string]string{}, nil
	}
	if err := agentconfig.ValidateEnv(f); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path.Join(procRoot, strconv.Itoa(pid), "environ"))
	if err != nil {
		return nil, fmt.Errorf("reading the target's environment: %w", err)
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(raw, []byte{0}) {
		k, v, ok := bytes.Cut(kv, []byte{'='})
		if !ok || len(k) == 0 {
			continue
		}
		name := string(k)
		if len(f.Include) > 0 && !matchAny(f.Include, name) || matchAny(f.Exclude, name) {
			continue
		}
		env[name] = string(v)
	}
	for k, v := range f.Override {
		env[k] = v
	}
	return env, nil
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// SortedKeys lists env's names in order (for stable output).
func SortedKeys(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
