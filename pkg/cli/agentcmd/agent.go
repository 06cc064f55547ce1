// Package agentcmd implements the hidden `kubectl-mirrord agent` command, run by the agent
// Jobs next to each target pod.
package agentcmd

import (
	"github.com/spf13/cobra"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
)

// NewCmdAgent returns the agent command.
func NewCmdAgent() *cobra.Command {
	return &cobra.Command{
		Use:    "agent",
		Short:  "Run an agent inside a target pod's namespaces (in-cluster)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdutil.NotAvailable("agent")
		},
	}
}
