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
	"strings"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// Env returns the environment raw (NAME=value entries), filtered and overridden as f says.
func Env(raw []string, f mirrordv1alpha1.EnvFeature) (map[string]string, error) {
	if f.Disabled {
		return map[string]string{}, nil
	}
	if err := agentconfig.ValidateEnv(f); err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, kv := range raw {
		name, v, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		if len(f.Include) > 0 && !matchAny(f.Include, name) || matchAny(f.Exclude, name) {
			continue
		}
		env[name] = v
	}
	for k, v := range f.Override {
		env[k] = v
	}
	return env, nil
}

// ProcEnviron reads the environment process pid started with from /proc/PID/environ, which
// is only that until the process writes over it (as programs that set their title do).
func ProcEnviron(procRoot string, pid int) ([]string, error) {
	raw, err := os.ReadFile(path.Join(procRoot, strconv.Itoa(pid), "environ"))
	if err != nil {
		return nil, fmt.Errorf("reading the target's environment: %w", err)
	}
	var env []string
	for _, kv := range bytes.Split(raw, []byte{0}) {
		if len(kv) > 0 {
			env = append(env, string(kv))
		}
	}
	return env, nil
}

// Hostname is the hostname in process pid's /etc/hostname (the kubelet mounts the pod's
// there in every container), "" if unreadable.
func Hostname(procRoot string, pid int) string {
	b, err := os.ReadFile(path.Join(procRoot, strconv.Itoa(pid), "root", "etc", "hostname"))
	if err != nil || len(b) > 255 {
		return ""
	}
	return strings.TrimSpace(string(b))
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
