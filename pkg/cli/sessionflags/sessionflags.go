// Package sessionflags holds the flags that describe a session (target and features), shared
// by `exec` and `sessions create`, and turns them into a MirrordSession spec.
package sessionflags

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	featurevalidation "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1/validation"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/config"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/outgoing"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/session"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

// Flags are the session-describing flags.
type Flags struct {
	ConfigFile       string
	Target           string
	Container        string
	Incoming         string
	Steal            bool
	HTTPHeaderFilter string
	HTTPPathFilter   string
	HTTPMethodFilter string
	Ports            []int32
	IgnorePorts      []int32
	PortMappings     []string
	FSMode           string
	FSReadOnly       []string
	FSReadWrite      []string
	FSLocal          []string
	FSNotFound       []string
	EnvInclude       []string
	EnvExclude       []string
	EnvOverride      map[string]string
	NoEnv            bool
	NoOutgoing       bool
	NoTCP            bool
	NoUDP            bool
	OutgoingLocal    []string
	OutgoingRemote   []string
	NoDNS            bool
	SessionTTL       int32
	Name             string
}

// AddFlags registers the flags on fs.
func (o *Flags) AddFlags(f *pflag.FlagSet) {
	f.StringVarP(&o.ConfigFile, "config-file", "f", "", "mirrord config file (JSON, YAML or TOML; default $"+config.EnvVar+"); flags override it")
	f.StringVarP(&o.Target, "target", "t", "", "target as pod/NAME[/container/C], deploy/NAME, sts/NAME, rs/NAME, ds/NAME")
	f.StringVarP(&o.Container, "container", "c", "", "container of the target's pods (default: the first)")
	f.StringVar(&o.Incoming, "incoming", "", "incoming traffic mode: mirror, steal or off (default mirror)")
	f.BoolVar(&o.Steal, "steal", false, "steal incoming traffic instead of mirroring it (same as --incoming=steal)")
	f.StringVar(&o.HTTPHeaderFilter, "http-header-filter", "", "steal only HTTP requests with a header line matching this regex")
	f.StringVar(&o.HTTPPathFilter, "http-path-filter", "", "steal only HTTP requests whose path matches this regex")
	f.StringVar(&o.HTTPMethodFilter, "http-method-filter", "", "steal only HTTP requests whose method matches this regex")
	f.Int32SliceVar(&o.Ports, "ports", nil, "intercept only these target ports")
	f.Int32SliceVar(&o.IgnorePorts, "ignore-ports", nil, "never intercept these target ports")
	f.StringSliceVar(&o.PortMappings, "port-mapping", nil, "REMOTE:LOCAL, deliver the target's REMOTE port to local port LOCAL")
	f.StringVar(&o.FSMode, "fs-mode", "", "file access: local, read or write (default read)")
	f.StringArrayVar(&o.FSReadOnly, "fs-read-only", nil, "paths (regex) read from the target whatever --fs-mode says; repeatable")
	f.StringArrayVar(&o.FSReadWrite, "fs-read-write", nil, "paths (regex) read and written in the target; repeatable")
	f.StringArrayVar(&o.FSLocal, "fs-local", nil, "paths (regex) always served by this machine; repeatable")
	f.StringArrayVar(&o.FSNotFound, "fs-not-found", nil, "paths (regex) that look absent; repeatable")
	f.StringSliceVar(&o.EnvInclude, "env-include", nil, "take only these environment variables (globs)")
	f.StringSliceVar(&o.EnvExclude, "env-exclude", nil, "never take these environment variables (globs)")
	f.StringToStringVar(&o.EnvOverride, "env-override", nil, "NAME=VALUE, set whatever the target says")
	f.BoolVar(&o.NoEnv, "no-env", false, "do not take the target's environment")
	f.BoolVar(&o.NoOutgoing, "no-outgoing", false, "make outgoing connections locally")
	f.BoolVar(&o.NoTCP, "no-tcp", false, "make outgoing TCP connections locally")
	f.BoolVar(&o.NoUDP, "no-udp", false, "send outgoing UDP locally")
	f.StringSliceVar(&o.OutgoingLocal, "outgoing-local", nil, "destinations reached from this machine: host, host:port, CIDR[:port], :port")
	f.StringSliceVar(&o.OutgoingRemote, "outgoing-remote", nil, "the only destinations reached through the target (the rest from this machine)")
	f.BoolVar(&o.NoDNS, "no-dns", false, "resolve names locally")
	f.Int32Var(&o.SessionTTL, "session-ttl", 30, "seconds a session lives after the last heartbeat")
	f.StringVar(&o.Name, "name", "", "the session's name (default: OWNER-TARGET-xxxxx); a name in use is an error")
}

// Spec builds the session spec for namespace, owned by owner. Every bad value is an error
// that names the flag.
func (o *Flags) Spec(namespace string, owner session.Owner) (mirrordv1alpha1.MirrordSessionSpec, error) {
	var spec mirrordv1alpha1.MirrordSessionSpec
	t, err := target.Parse(o.Target, o.Container, namespace)
	if err != nil {
		return spec, fmt.Errorf("--target: %w", err)
	}
	spec.Target = t
	owner.Own(&spec)
	if o.SessionTTL < 5 || o.SessionTTL > 3600 {
		return spec, fmt.Errorf("--session-ttl %d: use 5 to 3600 seconds", o.SessionTTL)
	}
	spec.TTLSeconds = o.SessionTTL
	if o.Name != "" {
		if errs := validation.IsDNS1123Subdomain(o.Name); len(errs) > 0 {
			return spec, fmt.Errorf("--name %q: %s", o.Name, strings.Join(errs, "; "))
		}
	}

	f := &spec.Features
	in := &f.Network.Incoming
	mode := o.Incoming
	if o.Steal {
		if mode != "" && mode != "steal" {
			return spec, fmt.Errorf("--steal contradicts --incoming=%s: give one of them", mode)
		}
		mode = "steal"
	}
	switch mode {
	case "", "mirror":
		in.Mode = mirrordv1alpha1.IncomingModeMirror
	case "steal":
		in.Mode = mirrordv1alpha1.IncomingModeSteal
	case "off":
		in.Mode = mirrordv1alpha1.IncomingModeOff
	default:
		return spec, fmt.Errorf("--incoming %q: use mirror, steal or off", mode)
	}
	if o.HTTPHeaderFilter != "" || o.HTTPPathFilter != "" || o.HTTPMethodFilter != "" {
		if in.Mode != mirrordv1alpha1.IncomingModeSteal {
			return spec, fmt.Errorf("HTTP filters choose which requests to steal: add --steal")
		}
		for flag, re := range map[string]string{"--http-header-filter": o.HTTPHeaderFilter, "--http-path-filter": o.HTTPPathFilter, "--http-method-filter": o.HTTPMethodFilter} {
			if _, err := regexp.Compile(re); err != nil {
				return spec, fmt.Errorf("%s %q is not a valid regular expression: %v", flag, re, err)
			}
		}
		in.HTTPFilter = &mirrordv1alpha1.HTTPFilter{Header: o.HTTPHeaderFilter, Path: o.HTTPPathFilter, Method: o.HTTPMethodFilter}
	}
	for flag, ports := range map[string][]int32{"--ports": o.Ports, "--ignore-ports": o.IgnorePorts} {
		for _, p := range ports {
			if p < 1 || p > 65535 {
				return spec, fmt.Errorf("%s %d: ports are 1 to 65535", flag, p)
			}
		}
	}
	in.Ports, in.IgnorePorts = o.Ports, o.IgnorePorts
	for _, m := range o.PortMappings {
		remote, local, ok := strings.Cut(m, ":")
		r, err1 := strconv.ParseInt(remote, 10, 32)
		l, err2 := strconv.ParseInt(local, 10, 32)
		if !ok || err1 != nil || err2 != nil || r < 1 || r > 65535 || l < 1 || l > 65535 {
			return spec, fmt.Errorf("--port-mapping %q: write REMOTE:LOCAL with ports 1 to 65535, e.g. 80:8080", m)
		}
		in.PortMapping = append(in.PortMapping, mirrordv1alpha1.PortMapping{Remote: int32(r), Local: int32(l)})
	}
	switch o.FSMode {
	case "", "read":
		f.FS.Mode = mirrordv1alpha1.FSModeRead
	case "local", "write":
		f.FS.Mode = mirrordv1alpha1.FSMode(o.FSMode)
	default:
		return spec, fmt.Errorf("--fs-mode %q: use local, read or write", o.FSMode)
	}
	for _, l := range []struct {
		flag string
		res  []string
	}{{"--fs-read-only", o.FSReadOnly}, {"--fs-read-write", o.FSReadWrite}, {"--fs-local", o.FSLocal}, {"--fs-not-found", o.FSNotFound}} {
		for _, re := range l.res {
			if _, err := regexp.Compile(re); err != nil {
				return spec, fmt.Errorf("%s %q is not a valid regular expression: %v", l.flag, re, err)
			}
		}
	}
	f.FS.ReadOnly, f.FS.ReadWrite, f.FS.Local, f.FS.NotFound = o.FSReadOnly, o.FSReadWrite, o.FSLocal, o.FSNotFound
	if len(o.EnvInclude) > 0 && len(o.EnvExclude) > 0 {
		return spec, fmt.Errorf("--env-include and --env-exclude are exclusive: give one of them")
	}
	f.Env = mirrordv1alpha1.EnvFeature{Disabled: o.NoEnv, Include: o.EnvInclude, Exclude: o.EnvExclude, Override: o.EnvOverride}
	if o.NoOutgoing || o.NoTCP {
		f.Network.Outgoing.TCP = ptr.To(false)
	}
	if o.NoOutgoing || o.NoUDP {
		f.Network.Outgoing.UDP = ptr.To(false)
	}
	switch {
	case len(o.OutgoingLocal) > 0 && len(o.OutgoingRemote) > 0:
		return spec, fmt.Errorf("--outgoing-local and --outgoing-remote are exclusive: list what goes locally, or what goes remotely")
	case len(o.OutgoingLocal) > 0:
		if _, err := outgoing.ParseFilter(o.OutgoingLocal, false); err != nil {
			return spec, fmt.Errorf("--outgoing-local: %w", err)
		}
		f.Network.Outgoing.Filter = &mirrordv1alpha1.OutgoingFilter{Local: o.OutgoingLocal}
	case len(o.OutgoingRemote) > 0:
		if _, err := outgoing.ParseFilter(o.OutgoingRemote, true); err != nil {
			return spec, fmt.Errorf("--outgoing-remote: %w", err)
		}
		f.Network.Outgoing.Filter = &mirrordv1alpha1.OutgoingFilter{Remote: o.OutgoingRemote}
	}
	f.Network.DNS.Disabled = o.NoDNS
	// The same check the member and the agent make: what the flags above do not name (an env
	// pattern, a config file's value) is named by its field.
	if errs := featurevalidation.ValidateFeatures(f, field.NewPath("feature")); len(errs) > 0 {
		return spec, errs.ToAggregate()
	}
	return spec, nil
}
