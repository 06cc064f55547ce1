// Package sessionflags holds the flags that describe a session (target and features), shared
// by `exec` and `sessions create`, and turns them into a MirrordSession spec.
package sessionflags

import (
	"fmt"
	"maps"
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
	EnvFile          string
	NoEnv            bool
	NoOutgoing       bool
	NoTCP            bool
	NoUDP            bool
	OutgoingLocal    []string
	OutgoingRemote   []string
	NoDNS            bool
	SessionTTL       int32
	Name             string

	// flags is the flag set AddFlags registered on, to tell a flag's default from a value the
	// command line set; file is the config file LoadConfig read.
	flags   *pflag.FlagSet
	file    *config.File
	mirrord mirrordFlags
}

// AddFlags registers the flags on fs.
func (o *Flags) AddFlags(f *pflag.FlagSet) {
	o.flags = f
	f.StringVarP(&o.ConfigFile, "config-file", "f", "", "mirrord config file (JSON, YAML or TOML; default $"+config.EnvVar+"); flags override it")
	f.StringVarP(&o.Target, "target", "t", "", "target as pod/NAME[/container/C], deploy/NAME, sts/NAME, rs/NAME, ds/NAME, or targetless (the default when none is given)")
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
	f.StringVar(&o.EnvFile, "env-file", "", "a file of NAME=value lines (dotenv) whose variables the command gets over the target's (read here, never sent)")
	f.BoolVar(&o.NoEnv, "no-env", false, "do not take the target's environment")
	f.BoolVar(&o.NoOutgoing, "no-outgoing", false, "make outgoing connections locally")
	f.BoolVar(&o.NoTCP, "no-tcp", false, "make outgoing TCP connections locally")
	f.BoolVar(&o.NoUDP, "no-udp", false, "send outgoing UDP locally")
	f.StringSliceVar(&o.OutgoingLocal, "outgoing-local", nil, "destinations reached from this machine: host, host:port, CIDR[:port], :port")
	f.StringSliceVar(&o.OutgoingRemote, "outgoing-remote", nil, "the only destinations reached through the target (the rest from this machine)")
	f.BoolVar(&o.NoDNS, "no-dns", false, "resolve names locally")
	f.Int32Var(&o.SessionTTL, "session-ttl", 30, "seconds a session lives after the last heartbeat")
	f.StringVar(&o.Name, "name", "", "the session's name (default: OWNER-TARGET-xxxxx); a name in use is an error")
	o.mirrord.add(f)
}

// Spec builds the session spec for namespace, owned by owner: the config file's features
// (LoadConfig), then every flag the command line set, checked once by the validation the
// member and the agent use. Every error names where the bad value came from: the flag, or
// the config file's key.
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
	f, err := o.features()
	if err != nil {
		return spec, err
	}
	if errs := featurevalidation.ValidateFeatures(&f, field.NewPath("feature")); len(errs) > 0 {
		return spec, o.fieldError(errs[0])
	}
	spec.Features = f
	return spec, nil
}

// features are the config file's features with the flags the command line set laid over
// them, and the defaults (mirror, read) where neither says.
func (o *Flags) features() (mirrordv1alpha1.Features, error) {
	var f mirrordv1alpha1.Features
	if o.file != nil {
		o.file.Features.DeepCopyInto(&f)
	}
	in := &f.Network.Incoming

	if o.set("steal") && o.Steal {
		if o.set("incoming") && o.Incoming != "" && o.Incoming != "steal" {
			return f, fmt.Errorf("--steal contradicts --incoming=%s: give one of them", o.Incoming)
		}
		in.Mode = mirrordv1alpha1.IncomingModeSteal
	} else if o.set("incoming") {
		switch o.Incoming {
		case "mirror", "steal", "off":
			in.Mode = mirrordv1alpha1.IncomingMode(o.Incoming)
		case "":
			in.Mode = ""
		default:
			return f, fmt.Errorf("--incoming %q: use mirror, steal or off", o.Incoming)
		}
	}
	if in.Mode == "" {
		in.Mode = mirrordv1alpha1.IncomingModeMirror
	}
	for _, hf := range []struct {
		flag  string
		value string
		dst   func(*mirrordv1alpha1.HTTPFilter) *string
	}{
		{"http-header-filter", o.HTTPHeaderFilter, func(h *mirrordv1alpha1.HTTPFilter) *string { return &h.Header }},
		{"http-path-filter", o.HTTPPathFilter, func(h *mirrordv1alpha1.HTTPFilter) *string { return &h.Path }},
		{"http-method-filter", o.HTTPMethodFilter, func(h *mirrordv1alpha1.HTTPFilter) *string { return &h.Method }},
	} {
		if o.set(hf.flag) {
			if in.HTTPFilter == nil {
				in.HTTPFilter = &mirrordv1alpha1.HTTPFilter{}
			}
			*hf.dst(in.HTTPFilter) = hf.value
		}
	}
	if !in.HTTPFilter.Filters() {
		in.HTTPFilter = nil
	}
	if in.HTTPFilter != nil && in.Mode != mirrordv1alpha1.IncomingModeSteal {
		return f, fmt.Errorf("HTTP filters choose which requests to steal: add --steal (or set feature.network.incoming.mode to steal)")
	}
	if o.set("ports") {
		in.Ports = o.Ports
	}
	if o.set("ignore-ports") {
		in.IgnorePorts = o.IgnorePorts
	}
	if o.set("port-mapping") {
		in.PortMapping = nil
		for _, m := range o.PortMappings {
			remote, local, ok := strings.Cut(m, ":")
			r, err1 := strconv.ParseInt(remote, 10, 32)
			l, err2 := strconv.ParseInt(local, 10, 32)
			if !ok || err1 != nil || err2 != nil {
				return f, fmt.Errorf("--port-mapping %q: write REMOTE:LOCAL, e.g. 80:8080", m)
			}
			in.PortMapping = append(in.PortMapping, mirrordv1alpha1.PortMapping{Remote: int32(r), Local: int32(l)})
		}
	}

	if o.set("fs-mode") {
		switch o.FSMode {
		case "local", "read", "write":
			f.FS.Mode = mirrordv1alpha1.FSMode(o.FSMode)
		case "localwithoverrides": // mirrord's name: local, with the overrides the path lists give
			f.FS.Mode = mirrordv1alpha1.FSModeLocal
		case "":
			f.FS.Mode = ""
		default:
			return f, fmt.Errorf("--fs-mode %q: use local, read or write", o.FSMode)
		}
	}
	if f.FS.Mode == "" {
		f.FS.Mode = mirrordv1alpha1.FSModeRead
	}
	o.EnvInclude, o.EnvExclude = splitEnvPatterns(o.EnvInclude), splitEnvPatterns(o.EnvExclude)
	for flag, l := range map[string]struct{ dst, v *[]string }{
		"fs-read-only": {&f.FS.ReadOnly, &o.FSReadOnly}, "fs-read-write": {&f.FS.ReadWrite, &o.FSReadWrite},
		"fs-local": {&f.FS.Local, &o.FSLocal}, "fs-not-found": {&f.FS.NotFound, &o.FSNotFound},
		"env-include": {&f.Env.Include, &o.EnvInclude}, "env-exclude": {&f.Env.Exclude, &o.EnvExclude},
	} {
		if o.set(flag) {
			*l.dst = *l.v
		}
	}
	if o.set("no-env") {
		f.Env.Disabled = o.NoEnv
	}
	if len(o.EnvOverride) > 0 {
		// Per variable: the flag's value wins over the file's.
		m := maps.Clone(f.Env.Override)
		if m == nil {
			m = map[string]string{}
		}
		maps.Copy(m, o.EnvOverride)
		f.Env.Override = m
	}
	if len(f.Env.Include) > 0 && len(f.Env.Exclude) > 0 {
		return f, fmt.Errorf("%s and %s are exclusive: give one of them", o.name("feature.env.include"), o.name("feature.env.exclude"))
	}

	out := &f.Network.Outgoing
	if o.NoOutgoing || (o.set("no-tcp") && o.NoTCP) {
		out.TCP = ptr.To(false)
	}
	if o.NoOutgoing || (o.set("no-udp") && o.NoUDP) {
		out.UDP = ptr.To(false)
	}
	if o.set("outgoing-local") || o.set("outgoing-remote") {
		if len(o.OutgoingLocal) > 0 && len(o.OutgoingRemote) > 0 {
			return f, fmt.Errorf("--outgoing-local and --outgoing-remote are exclusive: list what goes locally, or what goes remotely")
		}
		out.Filter = nil
		if len(o.OutgoingLocal) > 0 {
			out.Filter = &mirrordv1alpha1.OutgoingFilter{Local: o.OutgoingLocal}
		}
		if len(o.OutgoingRemote) > 0 {
			out.Filter = &mirrordv1alpha1.OutgoingFilter{Remote: o.OutgoingRemote}
		}
	}
	if o.set("no-dns") {
		f.Network.DNS.Disabled = o.NoDNS
	}
	// The filters are read by this machine's outgoing path only; the member and the agent
	// never see them, so they are parsed here, as that path will.
	for _, fl := range []struct {
		path   string
		filter *mirrordv1alpha1.OutgoingFilter
	}{{"feature.network.outgoing.filter", out.Filter}, {"feature.network.dns.filter", f.Network.DNS.Filter}} {
		if _, err := outgoing.FilterOf(fl.filter); err != nil {
			return f, fmt.Errorf("%s: %w", o.name(fl.path), err)
		}
	}
	return f, nil
}

// set reports whether the command line set flag. Flags made without AddFlags (tests) count
// every flag as set.
func (o *Flags) set(flag string) bool {
	if o.flags == nil {
		return true
	}
	f := o.flags.Lookup(flag)
	return f != nil && f.Changed
}

// flagsOf are the flags that set each of the API's feature fields (validation's field paths).
var flagsOf = map[string][]string{
	"feature.env.include":                        {"env-include"},
	"feature.env.exclude":                        {"env-exclude"},
	"feature.env.override":                       {"env-override"},
	"feature.fs.mode":                            {"fs-mode"},
	"feature.fs.readOnly":                        {"fs-read-only"},
	"feature.fs.readWrite":                       {"fs-read-write"},
	"feature.fs.local":                           {"fs-local"},
	"feature.fs.notFound":                        {"fs-not-found"},
	"feature.network.incoming.mode":              {"incoming", "steal"},
	"feature.network.incoming.ports":             {"ports"},
	"feature.network.incoming.ignorePorts":       {"ignore-ports"},
	"feature.network.incoming.portMapping":       {"port-mapping"},
	"feature.network.incoming.httpFilter.header": {"http-header-filter"},
	"feature.network.incoming.httpFilter.path":   {"http-path-filter"},
	"feature.network.incoming.httpFilter.method": {"http-method-filter"},
	"feature.network.outgoing.filter":            {"outgoing-local", "outgoing-remote"},
}

// name says where the value of an API field path came from: the flag that set it, else the
// config file's key.
func (o *Flags) name(fieldPath string) string {
	base, _ := config.SplitIndex(fieldPath)
	for _, flag := range flagsOf[base] {
		if o.set(flag) {
			return "--" + flag
		}
	}
	if o.file != nil {
		where := "config file"
		if o.file.Path != "" {
			where += " " + o.file.Path
		}
		return where + ": " + config.Key(fieldPath)
	}
	return fieldPath
}

// fieldError is a validation error named the way the user wrote the value.
func (o *Flags) fieldError(e *field.Error) error {
	return fmt.Errorf("%s %s", o.name(e.Field), config.FieldMessage(e))
}
