package sessionflags

import (
	"fmt"
	"io"
	"maps"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/config"
)

// Extra are settings of the config file that live outside Flags: the kubeconfig flags and
// the command's own timeout.
type Extra struct {
	Kube    *genericclioptions.ConfigFlags
	Timeout *time.Duration
}

// LoadConfig reads the config file named by --config-file (or $MIRRORD_CONFIG_FILE) and fills
// in every setting the command line did not set: flags override the file. Warnings (keys read
// but not applied) go to warn. No file is not an error.
func (o *Flags) LoadConfig(fs *pflag.FlagSet, extra Extra, warn io.Writer) error {
	path := o.ConfigFile
	if path == "" {
		path = os.Getenv(config.EnvVar)
	}
	if path == "" {
		return nil
	}
	c, err := config.Load(path)
	if err != nil {
		return err
	}
	for _, w := range c.Warnings {
		fmt.Fprintf(warn, "mirrord: %s: %s\n", path, w)
	}
	o.apply(c, func(name string) bool { f := fs.Lookup(name); return f != nil && f.Changed }, extra)
	return nil
}

// apply copies c into o where set(flag) says the command line did not.
func (o *Flags) apply(c *config.File, set func(flag string) bool, extra Extra) {
	str := func(flag string, dst *string, v *string) {
		if v != nil && !set(flag) {
			*dst = *v
		}
	}
	list := func(flag string, dst *[]string, v []string) {
		if v != nil && !set(flag) {
			*dst = v
		}
	}
	ports := func(flag string, dst *[]int32, v []int32) {
		if v != nil && !set(flag) {
			*dst = v
		}
	}
	boolean := func(flag string, dst *bool, v *bool) {
		if v != nil && !set(flag) {
			*dst = *v
		}
	}
	not := func(b *bool) *bool {
		if b == nil {
			return nil
		}
		v := !*b
		return &v
	}

	if c.Target != nil && !set("target") {
		o.Target = *c.Target
		str("container", &o.Container, c.Container)
	}
	if k := extra.Kube; k != nil {
		str("namespace", k.Namespace, c.Namespace)
		str("context", k.Context, c.KubeContext)
		str("kubeconfig", k.KubeConfig, c.Kubeconfig)
	}

	boolean("no-env", &o.NoEnv, c.Env.Disabled)
	list("env-include", &o.EnvInclude, c.Env.Include)
	list("env-exclude", &o.EnvExclude, c.Env.Exclude)
	if c.Env.Override != nil {
		// Per variable: the flag's value wins.
		m := maps.Clone(c.Env.Override)
		maps.Copy(m, o.EnvOverride)
		o.EnvOverride = m
	}

	str("fs-mode", &o.FSMode, c.FS.Mode)
	list("fs-read-only", &o.FSReadOnly, c.FS.ReadOnly)
	list("fs-read-write", &o.FSReadWrite, c.FS.ReadWrite)
	list("fs-local", &o.FSLocal, c.FS.Local)
	list("fs-not-found", &o.FSNotFound, c.FS.NotFound)

	in := c.Incoming
	if !set("steal") {
		str("incoming", &o.Incoming, in.Mode)
	}
	str("http-header-filter", &o.HTTPHeaderFilter, in.Header)
	str("http-path-filter", &o.HTTPPathFilter, in.Path)
	str("http-method-filter", &o.HTTPMethodFilter, in.Method)
	ports("ports", &o.Ports, in.Ports)
	ports("ignore-ports", &o.IgnorePorts, in.IgnorePorts)
	if in.PortMapping != nil && !set("port-mapping") {
		o.PortMappings = nil
		for _, m := range in.PortMapping {
			o.PortMappings = append(o.PortMappings, strconv.Itoa(int(m[0]))+":"+strconv.Itoa(int(m[1])))
		}
	}

	if !set("no-outgoing") {
		boolean("no-tcp", &o.NoTCP, not(c.Outgoing.TCP))
		boolean("no-udp", &o.NoUDP, not(c.Outgoing.UDP))
	}
	if !set("outgoing-local") && !set("outgoing-remote") {
		if c.Outgoing.Local != nil {
			o.OutgoingLocal, o.OutgoingRemote = c.Outgoing.Local, nil
		}
		if c.Outgoing.Remote != nil {
			o.OutgoingRemote, o.OutgoingLocal = c.Outgoing.Remote, nil
		}
	}
	boolean("no-dns", &o.NoDNS, not(c.DNS))

	if c.SessionTTL != nil && !set("session-ttl") {
		o.SessionTTL = *c.SessionTTL
	}
	if c.StartupTimeout != nil && extra.Timeout != nil && !set("timeout") {
		*extra.Timeout = *c.StartupTimeout
	}
}
