package sessions

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

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/session"
)

// KillOptions are the flags of `sessions kill`.
type KillOptions struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams

	All           bool
	AllNamespaces bool
	Wait          bool
	Timeout       time.Duration
}

// NewCmdKill returns `sessions kill`.
func NewCmdKill(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &KillOptions{ConfigFlags: flags, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "kill NAME... | --all",
		Short: "End sessions: their rules and child sessions are removed in every cluster, and agents no other session uses",
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.Run(cmd.Context(), args)
		},
		ValidArgsFunction: CompleteNames(flags),
	}
	cmd.Flags().BoolVar(&o.All, "all", false, "end every session in the namespace (with -A: everywhere)")
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "with --all, end sessions in every namespace")
	cmd.Flags().BoolVar(&o.Wait, "wait", true, "wait until every cluster has removed what the sessions made")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", time.Minute, "how long to wait with --wait")
	return cmd
}

// Run ends the named sessions, or all of them.
func (o *KillOptions) Run(ctx context.Context, names []string) error {
	switch {
	case o.All && len(names) > 0:
		return errors.New("give session names or --all, not both")
	case !o.All && len(names) == 0:
		return errors.New("say which sessions to end: kubectl mirrord sessions kill NAME... (or --all); `kubectl mirrord sessions` lists them")
	case o.AllNamespaces && !o.All:
		return errors.New("-A ends sessions in every namespace and needs --all")
	}
	cs, _, list, err := find(ctx, o.ConfigFlags, o.AllNamespaces, names)
	if err != nil {
		return err
	}
	if len(list.Items) == 0 {
		fmt.Fprintln(o.ErrOut, "No sessions to end.")
		return nil
	}
	var errs []error
	for _, s := range list.Items {
		if err := session.End(ctx, cs.Mirrord, s.Namespace, s.Name); err != nil {
			errs = append(errs, cmdutil.ExplainAPIError(err, "delete mirrordsession "+s.Namespace+"/"+s.Name))
			continue
		}
		fmt.Fprintf(o.Out, "mirrordsession %s/%s ending\n", s.Namespace, s.Name)
	}
	if err := errors.Join(errs...); err != nil || !o.Wait {
		return err
	}
	// The session object goes when the Primary has removed its children in every cluster
	// (its finalizer), so its disappearance means nothing is left.
	wctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	for _, s := range list.Items {
		err := wait.PollUntilContextCancel(wctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			_, err := cs.Mirrord.MirrordV1alpha1().MirrordSessions(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			return fmt.Errorf("session %s/%s still being removed after %s: `kubectl get mirrordsession %s -n %s -o yaml` shows which cluster holds it up", s.Namespace, s.Name, o.Timeout, s.Name, s.Namespace)
		}
		fmt.Fprintf(o.Out, "mirrordsession %s/%s ended\n", s.Namespace, s.Name)
	}
	return nil
}
