// Package exec implements `kubectl mirrord exec`: run a local command in the context of a
// remote target (its environment, files, DNS, outgoing network and incoming traffic).
package exec

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/sessionflags"
)

var (
	execLong = templates.LongDesc(`
		Run a local command as if it ran inside the target's pods: with the target container's
		environment, its files, its DNS and its outgoing network, and with the target's incoming
		traffic mirrored to it (a copy; the target still answers) or stolen (the local process
		answers), optionally only the HTTP requests that match a filter.

		The session is created on the Primary cluster of the current kubeconfig context and spans
		every member cluster that runs the target.`)

	execExample = templates.Examples(`
		# Run a local server with the environment and incoming traffic (mirrored) of deploy/api
		kubectl mirrord exec --target deploy/api -n shop -- go run ./cmd/api

		# Steal only the requests carrying your header; everyone else's go to the target
		kubectl mirrord exec -t deploy/api --steal --http-header-filter '^x-user: alice$' -- ./api

		# Use a config file (JSON, YAML or TOML, the fields mirrord users already write)
		kubectl mirrord exec -f .mirrord/mirrord.yaml -- python app.py`)
)

// Options holds the flags and streams of `kubectl mirrord exec`.
type Options struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams

	sessionflags.Flags
	ProxyMode        bool
	MirrordNamespace string
	LocalPorts       []uint16
	Timeout          time.Duration
	Quiet            bool

	Command []string
}

// NewCmdExec returns the exec command.
func NewCmdExec(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{ConfigFlags: flags, IOStreams: streams}
	var localPorts []uint
	cmd := &cobra.Command{
		Use:                   "exec --target TARGET [flags] -- COMMAND [ARGS...]",
		DisableFlagsInUseLine: true,
		Short:                 "Run a local command in the context of a remote target",
		Long:                  execLong,
		Example:               execExample,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(cmd, args); err != nil {
				return err
			}
			if err := o.LoadConfig(cmd.Flags(), sessionflags.Extra{Kube: flags, Timeout: &o.Timeout}, o.progressOut()); err != nil {
				return err
			}
			for _, p := range localPorts {
				if p < 1 || p > 65535 {
					return fmt.Errorf("--local-port %d: ports are 1 to 65535", p)
				}
				o.LocalPorts = append(o.LocalPorts, uint16(p))
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	o.AddFlags(f)
	sessionflags.RegisterCompletions(cmd, flags)
	f.BoolVar(&o.ProxyMode, "proxy-mode", false, "use proxy mode (no namespaces): env, incoming and proxy-aware outgoing only")
	f.StringVar(&o.MirrordNamespace, "mirrord-namespace", "mirrord-system", "namespace of kubectl-mirrord's controller on the Primary")
	f.UintSliceVar(&localPorts, "local-port", nil, "TCP ports of this machine the command reaches on its 127.0.0.1 (its loopback is its own)")
	f.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "how long to wait for the session's agents")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print nothing but the command's own output")
	return cmd
}

// Complete fills in the command to run from the positional arguments.
func (o *Options) Complete(cmd *cobra.Command, args []string) error {
	if dash := cmd.ArgsLenAtDash(); dash >= 0 {
		o.Command = args[dash:]
	} else {
		o.Command = args
	}
	return nil
}

// Validate checks the flags that need no cluster.
func (o *Options) Validate() error {
	if len(o.Command) == 0 {
		return fmt.Errorf("no command given: put the local command after --, e.g. kubectl mirrord exec -t deploy/api -- ./api")
	}
	return nil
}
