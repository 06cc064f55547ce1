package sessionflags

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/config"
)

// mirrordNames are mirrord exec's flag names that mean one of ours: a mirrord user's command
// line works as it is (`--no-remote-dns`, `--agent-ttl 60`, ...). NormalizeFlagName maps them.
var mirrordNames = map[string]string{
	"target-namespace":          "namespace",
	"no-remote-dns":             "no-dns",
	"no-tcp-outgoing":           "no-tcp",
	"no-udp-outgoing":           "no-udp",
	"override-env-vars-exclude": "env-exclude",
	"override-env-vars-include": "env-include",
	"agent-ttl":                 "session-ttl",
}

// NormalizeFlagName is the root command's flag normalization: mirrord's names are ours.
func NormalizeFlagName(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	if ours, ok := mirrordNames[name]; ok {
		return pflag.NormalizedName(ours)
	}
	return pflag.NormalizedName(name)
}

// ignoredMirrordFlags are mirrord exec's flags kubectl-mirrord accepts and does not apply:
// why (what the warning says), and whether mirrord's flag takes a value (the others are
// switches).
var ignoredMirrordFlags = map[string]struct {
	why        string
	takesValue bool
}{
	"no-telemetry":                {why: "kubectl-mirrord sends no telemetry"},
	"disable-version-check":       {why: "kubectl-mirrord checks no versions online"},
	"accept-invalid-certificates": {why: "TLS to the API server follows your kubeconfig"},
	"skip-processes":              {why: "every process the command starts runs in the session", takesValue: true},
	"agent-namespace":             {why: "agents run in the installation's namespace, as its admin set it", takesValue: true},
	"agent-log-level":             {why: "the installation's admin sets the agents' logging", takesValue: true},
	"agent-image":                 {why: "the installation's admin sets the agents' image", takesValue: true},
	"ephemeral-container":         {why: "agents always run as Jobs next to the target's pods"},
	"key":                         {why: "sessions are keyed by kubectl-mirrord itself", takesValue: true},
}

// mirrordFlags holds the values of mirrord's flags that have no equal of ours.
type mirrordFlags struct {
	startupTimeout int
	ignored        map[string]*string
}

func (m *mirrordFlags) add(f *pflag.FlagSet) {
	f.IntVar(&m.startupTimeout, "agent-startup-timeout", 0, "mirrord's name: seconds to wait for the session's agents (--timeout)")
	_ = f.MarkHidden("agent-startup-timeout")
	m.ignored = map[string]*string{}
	for name, flag := range ignoredMirrordFlags {
		v := new(string)
		m.ignored[name] = v
		f.StringVar(v, name, "", "mirrord's flag, accepted and not applied")
		if !flag.takesValue {
			f.Lookup(name).NoOptDefVal = "true"
		}
		_ = f.MarkHidden(name)
	}
}

// apply sets the timeout from --agent-startup-timeout unless --timeout was given, and warns
// of each ignored mirrord flag the command line set.
func (m *mirrordFlags) apply(fs *pflag.FlagSet, timeout *time.Duration, warn io.Writer) error {
	if f := fs.Lookup("agent-startup-timeout"); f != nil && f.Changed {
		if m.startupTimeout < 1 || m.startupTimeout > 3600 {
			return fmt.Errorf("--agent-startup-timeout %d: use 1 to 3600 seconds", m.startupTimeout)
		}
		if t := fs.Lookup("timeout"); timeout != nil && (t == nil || !t.Changed) {
			*timeout = time.Duration(m.startupTimeout) * time.Second
		}
	}
	for _, name := range slices.Sorted(maps.Keys(ignoredMirrordFlags)) {
		if f := fs.Lookup(name); f != nil && f.Changed {
			fmt.Fprintf(warn, "mirrord: --%s ignored: %s\n", name, ignoredMirrordFlags[name].why)
		}
	}
	return nil
}

// splitEnvPatterns splits mirrord's "A;B" lists (its -s/-x take one string) into patterns.
func splitEnvPatterns(l []string) []string {
	var out []string
	for _, e := range l {
		for _, p := range strings.Split(e, ";") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// DefaultMissingConfigFile gives mirrord's `-f` with no value its value,
// ./.mirrord/mirrord.json, in the arguments of `exec`, `port-forward` and `sessions create`: pflag has no
// optional value that still takes `-f FILE`, so the arguments get it before parsing. A `-f`
// is valueless when it ends the arguments or a flag or `--` follows it.
func DefaultMissingConfigFile(args []string) []string {
	session := len(args) > 0 && (args[0] == "exec" || args[0] == "port-forward") || len(args) > 1 && args[0] == "sessions" && args[1] == "create"
	if !session {
		return args
	}
	out := make([]string, 0, len(args)+1)
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		out = append(out, a)
		if a != "-f" && a != "--config-file" {
			continue
		}
		if i+1 == len(args) || (strings.HasPrefix(args[i+1], "-") && args[i+1] != "-") {
			out = append(out, "./"+config.DefaultPaths[0])
		}
	}
	return out
}
