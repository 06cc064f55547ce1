package sessions

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/sessionflags"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/session"
)

var createExample = templates.Examples(`
	# Start a session on deploy/api, wait until every cluster's agents are ready, and keep it
	# alive until Ctrl-C (which ends it everywhere)
	kubectl mirrord sessions create -t deploy/api -n shop

	# Start a session and leave: it ends by itself one TTL after its creation
	kubectl mirrord sessions create -t deploy/api --steal --http-header-filter '^x-user: me$' --detach`)

// CreateOptions are the flags of `sessions create`.
type CreateOptions struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams
	sessionflags.Flags

	Detach  bool
	Timeout time.Duration
	// MirrordNamespace is the Primary controller's, whose relay takes the heartbeats.
	MirrordNamespace string
}

// NewCmdCreate returns `sessions create`: a session without local traffic, which shows the
// whole control path (children, agents, heartbeats) and which `exec` builds on.
func NewCmdCreate(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CreateOptions{ConfigFlags: flags, IOStreams: streams}
	cmd := &cobra.Command{
		Use:     "create --target TARGET [flags]",
		Short:   "Start a session without running a local command, and keep it alive until interrupted",
		Example: createExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.LoadConfig(cmd.Flags(), sessionflags.Extra{Kube: flags, Timeout: &o.Timeout}, o.ErrOut); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return o.Run(ctx)
		},
	}
	o.AddFlags(cmd.Flags())
	sessionflags.RegisterCompletions(cmd, flags)
	cmd.Flags().BoolVar(&o.Detach, "detach", false, "print the session's name once it is ready and exit without ending it (it expires one TTL later)")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 2*time.Minute, "how long to wait for the session to become ready")
	cmd.Flags().StringVar(&o.MirrordNamespace, "mirrord-namespace", "mirrord-system", "namespace of kubectl-mirrord's controller on the Primary")
	return cmd
}

// Run creates the session, waits for it, then heartbeats until ctx ends and ends it.
func (o *CreateOptions) Run(ctx context.Context) error {
	primary, err := cmdutil.ConnectPrimary(o.ConfigFlags)
	if err != nil {
		return err
	}
	ns, restCfg, cs, kube := primary.Namespace, primary.Config, primary.Clients, primary.Clients.Kube
	owner, err := session.Whoami(ctx, kube)
	if err != nil {
		return err
	}
	spec, err := o.Spec(ns, owner)
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(o.ErrOut, format+"\n", args...) }
	branches, err := session.StartBranches(ctx, cs.Mirrord, owner, &spec, o.DBBranches(), logf)
	if err != nil {
		return err
	}
	for _, b := range branches {
		logf("database branch %s answers on %s:%d, with the source's user, password and database", b.Name, b.Endpoint.Host, b.Endpoint.Port)
	}
	started, err := session.Start(ctx, session.StartOptions{
		Config: restCfg, Clients: cs, Namespace: ns, Name: o.Name, Spec: spec,
		MirrordNamespace: o.MirrordNamespace, Timeout: o.Timeout, Progress: o.ErrOut, Logf: logf,
	})
	if err != nil {
		return err
	}
	name := started.Session.Name
	if o.Detach {
		fmt.Fprintln(o.Out, name)
		return nil
	}
	fmt.Fprintf(o.ErrOut, "session %s ready; heartbeating every %s (Ctrl-C ends it)\n", name, started.HeartbeatInterval())
	select {
	case <-ctx.Done():
		if err := started.End(); err != nil {
			logf("%v", err)
			return nil
		}
		logf("session %s ended", name)
		return nil
	case <-started.Ended():
		return started.EndedBecause()
	}
}
