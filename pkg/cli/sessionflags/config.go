package sessionflags

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/joho/godotenv"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/config"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/fsmap"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

// Extra are settings of the config file that live outside Flags: the kubeconfig flags and
// the command's own timeout.
type Extra struct {
	Kube    *genericclioptions.ConfigFlags
	Timeout *time.Duration
}

// LoadConfig reads the config file named by --config-file (or $MIRRORD_CONFIG_FILE): its
// features are the base Spec lays the flags over, and it fills in the target, the kubeconfig
// flags, the session's TTL and the command's timeout where the command line did not set them.
// Warnings (keys read but not applied) go to warn. No file is not an error.
func (o *Flags) LoadConfig(fs *pflag.FlagSet, extra Extra, warn io.Writer) error {
	o.flags = fs
	if err := o.mirrord.apply(fs, extra.Timeout, warn); err != nil {
		return err
	}
	path := o.ConfigFile
	if path == "" {
		path = os.Getenv(config.EnvVar)
	}
	if path == "" {
		// As mirrord's IDE extensions do: the project's .mirrord/mirrord.* when nothing else
		// names a file.
		for _, p := range config.DefaultPaths {
			if _, err := os.Stat(p); err == nil {
				path = p
				fmt.Fprintf(warn, "mirrord: using config file %s (give -f to choose another)\n", p)
				break
			}
		}
	}
	if path != "" {
		c, err := config.Load(path)
		if err != nil {
			return err
		}
		for _, w := range c.Warnings {
			fmt.Fprintf(warn, "mirrord: %s: %s\n", path, w)
		}
		if in := &c.Features.Network.Incoming; in.HTTPFilter != nil && in.Mode != mirrordv1alpha1.IncomingModeSteal && !o.stealsByFlag() {
			// As mirrord: an HTTP filter chooses which requests to steal, and is ignored otherwise.
			fmt.Fprintf(warn, "mirrord: %s: feature.network.incoming.http_filter ignored: it chooses which requests to steal, and the mode is not steal (set mode = \"steal\", or give --steal)\n", path)
			in.HTTPFilter = nil
		}
		o.flags, o.file = fs, c
		o.applySettings(c, extra)
	}
	o.defaultTargetless(warn)
	return nil
}

// stealsByFlag reports whether the command line sets the incoming mode to steal.
func (o *Flags) stealsByFlag() bool {
	return (o.set("steal") && o.Steal) || (o.set("incoming") && o.Incoming == "steal")
}

// incomingFlags are the flags that shape incoming traffic, which a targetless session has none of.
var incomingFlags = []string{"incoming", "steal", "http-header-filter", "http-path-filter", "http-method-filter", "ports", "ignore-ports", "port-mapping"}

// defaultTargetless makes a session with no target targetless, as mirrord does, and says so;
// and says which settings a targetless session has no use for.
func (o *Flags) defaultTargetless(warn io.Writer) {
	if o.Target == "" {
		o.Target = target.Targetless
		fmt.Fprintln(warn, "mirrord: no target given: running targetless (DNS, outgoing traffic and files from an agent in the session's namespace of the Default cluster; no incoming traffic); name one with --target deploy/NAME")
	}
	if !strings.EqualFold(o.Target, target.Targetless) {
		return
	}
	for _, f := range incomingFlags {
		if o.set(f) {
			fmt.Fprintf(warn, "mirrord: --%s is ignored: a targetless session receives no incoming traffic\n", f)
		}
	}
}

// applySettings copies the file's settings that are not features where the command line did
// not set them.
func (o *Flags) applySettings(c *config.File, extra Extra) {
	str := func(flag string, dst *string, v *string) {
		if v != nil && !o.set(flag) {
			*dst = *v
		}
	}
	if c.Target != nil && !o.set("target") {
		o.Target = *c.Target
		str("container", &o.Container, c.Container)
	}
	if k := extra.Kube; k != nil {
		str("namespace", k.Namespace, c.Namespace)
		str("context", k.Context, c.KubeContext)
		str("kubeconfig", k.KubeConfig, c.Kubeconfig)
	}
	if c.EnvFile != nil && !o.set("env-file") {
		o.EnvFile = *c.EnvFile
	}
	if c.SessionTTL != nil && !o.set("session-ttl") {
		o.SessionTTL = *c.SessionTTL
	}
	if c.StartupTimeout != nil && extra.Timeout != nil && !o.set("timeout") {
		*extra.Timeout = *c.StartupTimeout
	}
}

// ReadEnvFile reads the env file (--env-file, or the config file's feature.env.env_file) as
// mirrord does (dotenv syntax: NAME=value lines, quotes, comments); none is an empty map.
func (o *Flags) ReadEnvFile() (map[string]string, error) {
	if o.EnvFile == "" {
		return nil, nil
	}
	vars, err := godotenv.Read(o.EnvFile)
	if err != nil {
		where := "--env-file " + o.EnvFile
		if !o.set("env-file") && o.file != nil {
			where = fmt.Sprintf("config file %s: feature.env.env_file %s", o.file.Path, o.EnvFile)
		}
		return nil, fmt.Errorf("%s: %w (a file of NAME=value lines)", where, err)
	}
	return vars, nil
}

// FSMapping is the config file's feature.fs.mapping (nil without one); the loader checked it.
func (o *Flags) FSMapping() (*fsmap.Mapping, error) {
	if o.file == nil || len(o.file.FSMapping) == 0 {
		return nil, nil
	}
	m, err := fsmap.New(o.file.FSMapping)
	if err != nil {
		return nil, fmt.Errorf("config file %s: feature.fs.mapping: %w", o.file.Path, err)
	}
	return m, nil
}

// DBBranches are the config file's database branches (feature.db_branches), none without one.
func (o *Flags) DBBranches() []mirrordv1alpha1.MirrordDBBranchSpec {
	if o.file == nil {
		return nil
	}
	return o.file.DBBranches
}
