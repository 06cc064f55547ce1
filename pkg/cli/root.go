// Package cli assembles the kubectl-mirrord command tree. Each verb lives in its own
// package; this one only wires them under the root and the shared kubeconfig flags.
package cli

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/clustercmd"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/controllercmd"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/exec"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/sessions"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/status"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/versioncmd"
)

var rootLong = templates.LongDesc(`
	kubectl mirrord runs a local process in the context of remote Kubernetes workloads,
	across one or many clusters: the target's environment, files, DNS and outgoing network,
	and its incoming traffic, mirrored or stolen.`)

// NewRootCmd returns the `kubectl mirrord` command with every subcommand.
func NewRootCmd(streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	root := &cobra.Command{
		Use:   "kubectl-mirrord",
		Short: "Run local code in the context of remote Kubernetes workloads",
		Long:  rootLong,
		Annotations: map[string]string{
			// Usage lines read "kubectl mirrord ...", as krew plugins should.
			cobra.CommandDisplayNameAnnotation: "kubectl mirrord",
		},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	flags.AddFlags(root.PersistentFlags())

	root.AddCommand(
		exec.NewCmdExec(flags, streams),
		sessions.NewCmdSessions(flags, streams),
		status.NewCmdStatus(flags, streams),
		clustercmd.NewCmdCluster(flags, streams),
		versioncmd.NewCmdVersion(streams),
		controllercmd.NewCmdController(flags),
	)
	root.AddCommand(platformCommands()...)
	// cobra adds the visible `completion` command (bash, zsh, fish, powershell) itself.
	return root
}
