package cli

import (
	"github.com/spf13/cobra"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/agentcmd"
)

// platformCommands are the commands only Linux has: the agent runs in the cluster's nodes.
func platformCommands() []*cobra.Command { return []*cobra.Command{agentcmd.NewCmdAgent()} }
