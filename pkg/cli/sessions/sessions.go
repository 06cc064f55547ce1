// Package sessions implements `kubectl mirrord sessions`: list and end sessions.
package sessions

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
)

var (
	sessionsExample = templates.Examples(`
		# List the sessions of the current namespace
		kubectl mirrord sessions

		# List every session, as YAML
		kubectl mirrord sessions -A -o yaml

		# End one session, or all of them
		kubectl mirrord sessions kill alice-api-x7k2
		kubectl mirrord sessions kill --all`)
)

// Options holds the flags of `kubectl mirrord sessions`.
type Options struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams

	AllNamespaces bool
	Output        string
	All           bool
}

// NewCmdSessions returns the sessions command and its kill subcommand.
func NewCmdSessions(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{ConfigFlags: flags, IOStreams: streams}
	cmd := &cobra.Command{
		Use:     "sessions",
		Aliases: []string{"session"},
		Short:   "List mirrord sessions on the Primary cluster",
		Example: sessionsExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdutil.NotAvailable("sessions")
		},
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "list sessions in every namespace")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json, yaml or name (default: a table)")

	kill := &cobra.Command{
		Use:   "kill [NAME...] [--all]",
		Short: "End sessions: their agents, rules and child sessions are removed in every cluster",
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdutil.NotAvailable("sessions kill")
		},
	}
	kill.Flags().BoolVar(&o.All, "all", false, "end every session in the namespace (with -A: everywhere)")
	kill.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "with --all, end sessions in every namespace")
	cmd.AddCommand(kill, NewCmdCreate(flags, streams))
	return cmd
}
