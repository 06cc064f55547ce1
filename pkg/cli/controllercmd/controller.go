// Package controllercmd implements the hidden `kubectl-mirrord controller` command: the
// in-cluster controller of every role.
package controllercmd

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/klog/v2"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/authz"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/manager"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/member"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/relay"
)

// NewCmdController returns the controller command. Outside a cluster it uses the kubeconfig
// (--kubeconfig, --context), which is how it runs in development.
func NewCmdController(flags *genericclioptions.ConfigFlags) *cobra.Command {
	cfg := manager.Config{
		Namespace: os.Getenv("POD_NAMESPACE"),
		PodName:   os.Getenv("POD_NAME"),
	}
	verbosity := 0
	var dbImages []string
	cmd := &cobra.Command{
		Use:    "controller",
		Short:  "Run the session controller (in-cluster)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(agentconfig.StealBackends, cfg.AgentStealBackend) {
				return fmt.Errorf("--agent-steal-backend=%s: want one of %s", cfg.AgentStealBackend, strings.Join(agentconfig.StealBackends, ", "))
			}
			images, err := parseDBImages(dbImages)
			if err != nil {
				return err
			}
			cfg.DBImages = images
			if cfg.AgentMaxProcs < 0 {
				return fmt.Errorf("--agent-max-procs=%d: want 0 (all the node's CPUs) or more", cfg.AgentMaxProcs)
			}
			fs := flag.NewFlagSet("klog", flag.ContinueOnError)
			klog.InitFlags(fs)
			_ = fs.Set("v", strconv.Itoa(verbosity))
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			ctx = klog.NewContext(ctx, klog.Background())
			restCfg, err := flags.ToRESTConfig()
			if err != nil {
				return err
			}
			err = manager.Run(ctx, restCfg, cfg)
			klog.Flush()
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.RolesDir, "roles-dir", "/etc/kubectl-mirrord/roles", "directory where the mirrord-roles ConfigMap is mounted")
	f.StringVar(&cfg.Namespace, "controller-namespace", cfg.Namespace, "the controller's namespace (default $POD_NAMESPACE)")
	f.StringVar(&cfg.MetricsAddr, "metrics-bind-address", ":8080", "address of /metrics (0 disables it)")
	f.StringVar(&cfg.ProbeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz (0 disables them)")
	f.BoolVar(&cfg.Profiling, "profiling", false, "serve Go's /debug/pprof on the metrics address")
	f.StringVar(&cfg.RelayAddr, "relay-bind-address", fmt.Sprintf(":%d", relay.Port), "address of the session relay (the mirrord-relay Service's target)")
	f.BoolVar(&cfg.LeaderElect, "leader-elect", true, "elect one active replica through a Lease")
	f.StringVar(&cfg.AgentImage, "agent-image", "", "image of agent Jobs (default: this pod's image)")
	f.DurationVar(&cfg.AgentDeadline, "agent-active-deadline", 24*time.Hour, "longest life of an agent Job")
	f.StringVar(&cfg.AgentRuntimeEndpoint, "agent-runtime-endpoint", "", "the nodes' CRI socket, e.g. unix:///run/containerd/containerd.sock (default: the runtime that runs the agent, then the well-known sockets, then a /proc scan)")
	f.StringVar(&cfg.AgentStealBackend, "agent-steal-backend", "auto", "how agents redirect stolen ports: auto (nftables, else iptables), nftables, iptables-nft or iptables-legacy")
	f.IntVar(&cfg.AgentMaxProcs, "agent-max-procs", member.DefaultAgentMaxProcs, "CPUs an agent's Go code runs on at once (GOMAXPROCS); 0 for all the node's CPUs")
	f.StringSliceVar(&cfg.ExcludedNamespaces, "excluded-namespaces", authz.DefaultExcludedNamespaces, "namespaces whose workloads no session may target in this cluster, whatever the Primary asks (the controller's own namespace is always excluded)")
	f.StringArrayVar(&dbImages, "db-branch-image", nil, "ENGINE=IMAGE: the image of database branches of ENGINE (PostgreSQL, MySQL, MariaDB), {version} replaced by the branch's version (default: the official images); repeatable")
	f.IntVar(&cfg.Workers, "workers", 20, "reconcile workers per controller (each mostly waits on API calls)")
	f.IntVar(&verbosity, "v", 0, "log verbosity")
	return cmd
}

// parseDBImages reads --db-branch-image values.
func parseDBImages(values []string) (map[mirrordv1alpha1.DBEngine]string, error) {
	out := map[mirrordv1alpha1.DBEngine]string{}
	for _, v := range values {
		engine, ref, ok := strings.Cut(v, "=")
		e := mirrordv1alpha1.DBEngine(engine)
		if _, known := member.DBBranchImages[e]; !ok || !known || ref == "" {
			return nil, fmt.Errorf("--db-branch-image=%s: want ENGINE=IMAGE with ENGINE one of PostgreSQL, MySQL, MariaDB", v)
		}
		out[e] = ref
	}
	return out, nil
}
