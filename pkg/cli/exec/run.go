package exec

import (
	"context"
	"fmt"
	"io"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/sandbox"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/session"
)

// Run runs the session: create it, wait for it, run the command in its context, end it.
func (o *Options) Run(ctx context.Context) error {
	primary, err := cmdutil.ConnectPrimary(o.ConfigFlags)
	if err != nil {
		return err
	}
	ns := primary.Namespace
	// Every mistake in the flags is reported before anything is created.
	if _, err := o.Spec(ns, session.Owner{Name: "-"}); err != nil {
		return err
	}
	envFile, err := o.ReadEnvFile()
	if err != nil {
		return err
	}
	fsMapping, err := o.FSMapping()
	if err != nil {
		return err
	}
	if !o.ProxyMode {
		if err := sandbox.Supported(); err != nil {
			o.logf("%v: running in proxy mode instead", err)
			o.ProxyMode = true
		}
	}
	owner, err := session.Whoami(ctx, primary.Clients.Kube)
	if err != nil {
		return err
	}
	spec, err := o.Spec(ns, owner)
	if err != nil {
		return err
	}
	branches, err := session.StartBranches(ctx, primary.Clients.Mirrord, owner, &spec, o.DBBranches(), o.logf)
	if err != nil {
		return err
	}
	started, err := session.Start(ctx, session.StartOptions{
		Config: primary.Config, Clients: primary.Clients, Namespace: ns, Name: o.Name, Spec: spec,
		MirrordNamespace: o.MirrordNamespace, Timeout: o.Timeout, Progress: o.progressOut(), Logf: o.logf,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := started.End(); err != nil {
			o.logf("%v", err)
		}
	}()
	spec = started.Session.Spec // with its profile applied
	// ended closes when someone else ends the session: the command is stopped then.
	ended := make(chan struct{})
	go func() {
		select {
		case <-started.Ended():
			o.logf("%v: stopping the command", started.EndedBecause())
			close(ended)
		case <-ctx.Done():
		}
	}()
	client, err := started.Dial(ctx, session.LogReconnects(o.logf, spec.TTLSeconds))
	if err != nil {
		return err
	}
	defer client.Close()
	code, err := local.Run(ctx, client, &spec, local.Options{
		Command: o.Command, ProxyMode: o.ProxyMode, LocalPorts: o.LocalPorts, EnvFile: envFile, DBBranches: branches,
		Queues: session.QueueEnv(started.Session), FSMapping: fsMapping,
		In: o.In, Out: o.Out, ErrOut: o.ErrOut, Logf: o.logf,
		StartedAt: started.StartedAt, Ended: ended,
	})
	if err != nil {
		return err
	}
	if code != 0 {
		return &cmdutil.ExitError{Code: code}
	}
	return nil
}

func (o *Options) progressOut() io.Writer {
	if o.Quiet {
		return io.Discard
	}
	return o.ErrOut
}

func (o *Options) logf(format string, args ...any) {
	if !o.Quiet {
		fmt.Fprintf(o.ErrOut, "mirrord: "+format+"\n", args...)
	}
}
