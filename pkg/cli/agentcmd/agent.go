// Package agentcmd implements the hidden `kubectl-mirrord agent` command, which the member
// controller runs as a Job next to each target pod.
package agentcmd

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent"
)

// NewCmdAgent returns the agent command. Its configuration comes from the environment
// (agent.ConfigEnv), set by the member controller.
func NewCmdAgent() *cobra.Command {
	return &cobra.Command{
		Use:    "agent",
		Short:  "Run an agent inside a target pod's namespaces (in-cluster)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := agent.ConfigFromEnv()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return agent.New(cfg).Run(klog.NewContext(ctx, klog.Background()))
		},
	}
}
