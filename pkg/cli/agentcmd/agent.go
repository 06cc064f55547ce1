// Package agentcmd implements the hidden `kubectl-mirrord agent` command, which the member
// controller runs as a Job next to each target pod.
package agentcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/steal"
)

// supervisedEnv marks the agent process a supervisor started.
const supervisedEnv = "MIRRORD_AGENT_SUPERVISED"

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
			logger := klog.Background()
			if os.Getenv(supervisedEnv) == "" {
				backend, why, err := steal.ResolveBackend(cfg.StealBackend)
				if err != nil {
					return err
				}
				logger.Info("Steal backend", "backend", backend, "why", why)
				cfg.StealBackend = string(backend)
				if backend != steal.NFTables {
					return supervise(cfg)
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return agent.New(cfg).Run(klog.NewContext(ctx, logger))
		},
	}
}

// supervise runs the agent as a child of this process, which removes its iptables rules
// once it exits, however it exits (nftables needs none of this: the kernel removes an
// owned table with its owner).
func supervise(cfg agent.Config) error {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.Command(self, os.Args[1:]...)
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
	child.Env = append(os.Environ(), agentconfig.ConfigEnv+"="+string(raw), supervisedEnv+"=1")
	err = steal.Supervise(child)
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return fmt.Errorf("the agent exited: %s", ee.ProcessState)
	}
	return err
}
