// Package controllercmd implements the hidden `kubectl-mirrord controller` command, the
// entry point of the controller Deployment installed by the kustomize overlays.
package controllercmd

import (
	"github.com/spf13/cobra"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
)

// NewCmdController returns the controller command.
func NewCmdController() *cobra.Command {
	return &cobra.Command{
		Use:    "controller",
		Short:  "Run the session controller (in-cluster)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdutil.NotAvailable("controller")
		},
	}
}
