// Package dbbranches implements `kubectl mirrord db-branches`: list the database branches of
// a namespace and destroy them (mirrord's `mirrord db-branches`).
package dbbranches

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/cmd/get"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/clients"
)

// Resource is the branches' resource as kubectl names it.
const Resource = "mirrorddbbranches.kubectl-mirrord.io"

var example = templates.Examples(`
	# The database branches of the current namespace: id, engine, copy mode, target, phase, expiry
	kubectl mirrord db-branches

	# One branch whole (its endpoint, the sessions using it, why it failed)
	kubectl mirrord db-branches branch-team -o yaml

	# Destroy one branch, or every branch of the namespace
	kubectl mirrord db-branches destroy branch-team
	kubectl mirrord db-branches destroy --all`)

// NewCmdDBBranches returns the db-branches command: listing is kubectl get itself on
// MirrordDBBranches (the CRD's columns, -o, -A, -w, --sort-by).
func NewCmdDBBranches(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := get.NewGetOptions("kubectl mirrord", streams)
	f := kcmdutil.NewFactory(kcmdutil.NewMatchVersionFlags(flags))
	cmd := &cobra.Command{
		Use:   "db-branches [NAME...]",
		Short: "List database branches on the Primary cluster",
		Long: templates.LongDesc(`
			Lists the MirrordDBBranches of the current namespace (-A: every namespace), as
			kubectl get mirrorddbbranches does: each branch's id, engine, copy mode, target,
			phase and expiry. A branch is made by exec when its config file's
			feature.db_branches asks for one, shared by every session naming its id, and
			deleted its TTL after the last of them ends.`),
		Example: example,
		RunE: func(cmd *cobra.Command, args []string) error {
			args = append([]string{Resource}, args...)
			if err := o.Complete(f, cmd, args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return cmdutil.ExplainAPIError(o.Run(f, args), "list mirrorddbbranches")
		},
	}
	o.PrintFlags.AddFlags(cmd)
	cmd.Flags().BoolVarP(&o.Watch, "watch", "w", false, "after listing, watch for changes")
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "list branches in every namespace")
	cmd.AddCommand(newCmdDestroy(flags, streams))
	return cmd
}

type destroyOptions struct {
	flags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams
	all     bool
	timeout time.Duration
}

func newCmdDestroy(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &destroyOptions{flags: flags, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "destroy NAME... | --all",
		Short: "Destroy database branches now: their pods and data go, whatever their TTL",
		RunE:  func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), args) },
	}
	cmd.Flags().BoolVar(&o.all, "all", false, "destroy every branch of the namespace")
	cmd.Flags().DurationVar(&o.timeout, "timeout", time.Minute, "how long to wait until they are gone")
	return cmd
}

func (o *destroyOptions) run(ctx context.Context, names []string) error {
	switch {
	case o.all && len(names) > 0:
		return errors.New("give branch names or --all, not both")
	case !o.all && len(names) == 0:
		return errors.New("say which branches to destroy: kubectl mirrord db-branches destroy NAME... (or --all); `kubectl mirrord db-branches` lists them")
	}
	ns, _, err := o.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return err
	}
	cs, err := clients.ForFlags(o.flags)
	if err != nil {
		return err
	}
	branches := cs.Mirrord.MirrordV1alpha1().MirrordDBBranches(ns)
	if o.all {
		l, err := branches.List(ctx, metav1.ListOptions{})
		if err != nil {
			return cmdutil.ExplainAPIError(err, "list mirrorddbbranches")
		}
		for _, b := range l.Items {
			names = append(names, b.Name)
		}
		if len(names) == 0 {
			fmt.Fprintln(o.ErrOut, "No database branches to destroy.")
			return nil
		}
	}
	var errs []error
	for _, n := range names {
		err := branches.Delete(ctx, n, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("no database branch %q in namespace %s: `kubectl mirrord db-branches` lists them", n, ns))
			continue
		}
		if err != nil {
			errs = append(errs, cmdutil.ExplainAPIError(err, "delete mirrorddbbranch "+ns+"/"+n))
			continue
		}
		fmt.Fprintf(o.Out, "mirrorddbbranch %s/%s destroyed\n", ns, n)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, o.timeout, true, func(ctx context.Context) (bool, error) {
		for _, n := range names {
			if _, err := branches.Get(ctx, n, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false, nil
			}
		}
		return true, nil
	})
}
