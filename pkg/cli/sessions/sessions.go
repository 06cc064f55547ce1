// Package sessions implements `kubectl mirrord sessions`: list, create and end sessions.
package sessions

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/cmd/get"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/clients"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

var (
	sessionsExample = templates.Examples(`
		# List the sessions of the current namespace
		kubectl mirrord sessions

		# Every session, with more columns; or the names only
		kubectl mirrord sessions -A -o wide
		kubectl mirrord sessions -A -o name

		# Alice's sessions on deployment/api, watched as they change
		kubectl mirrord sessions -l kubectl-mirrord.io/owner=alice,kubectl-mirrord.io/target-name=api -w

		# One session as YAML; the targets of every session
		kubectl mirrord sessions alice-api-x7k2 -o yaml
		kubectl mirrord sessions -A -o jsonpath='{.items[*].status.targetDescription}'

		# End one session, or all of them
		kubectl mirrord sessions kill alice-api-x7k2
		kubectl mirrord sessions kill --all`)
)

// Resource is the sessions' resource as kubectl names it.
const Resource = "mirrordsessions.kubectl-mirrord.io"

// NewCmdSessions returns the sessions command and its subcommands. Listing is kubectl get
// itself (k8s.io/kubectl's GetOptions) on MirrordSessions: the same columns as `kubectl get
// mirrordsessions` (the CRD's, printed by the server), and kubectl's output, selector, sort
// and watch flags.
func NewCmdSessions(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := get.NewGetOptions("kubectl mirrord", streams)
	f := kcmdutil.NewFactory(kcmdutil.NewMatchVersionFlags(flags))
	cmd := &cobra.Command{
		Use:     "sessions [NAME...]",
		Aliases: []string{"session"},
		Short:   "List mirrord sessions on the Primary cluster",
		Long: templates.LongDesc(`
			Lists the MirrordSessions of the current namespace (-A: every namespace) on the
			Primary cluster of the current context, as kubectl get mirrordsessions does, with
			its output formats (-o wide|name|json|yaml|jsonpath=...|custom-columns=...),
			--no-headers, --sort-by, -w, and -l on the labels every session carries:
			kubectl-mirrord.io/owner, kubectl-mirrord.io/target-kind and
			kubectl-mirrord.io/target-name.`),
		Example: sessionsExample,
		RunE: func(cmd *cobra.Command, args []string) error {
			args = append([]string{Resource}, args...)
			if err := o.Complete(f, cmd, args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return cmdutil.ExplainAPIError(o.Run(f, args), "list mirrordsessions")
		},
		ValidArgsFunction: CompleteNames(flags),
	}
	o.PrintFlags.AddFlags(cmd)
	fl := cmd.Flags()
	fl.BoolVarP(&o.Watch, "watch", "w", false, "after listing, watch for changes")
	fl.BoolVar(&o.WatchOnly, "watch-only", false, "watch for changes without listing first")
	fl.BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "list sessions in every namespace")
	fl.StringVarP(&o.LabelSelector, "selector", "l", "", "label selector, e.g. -l kubectl-mirrord.io/owner=alice")
	fl.StringVar(&o.FieldSelector, "field-selector", "", "field selector, e.g. --field-selector metadata.name=x")
	fl.BoolVar(&o.IgnoreNotFound, "ignore-not-found", false, "no error for named sessions that do not exist")
	fl.Int64Var(&o.ChunkSize, "chunk-size", 500, "list in chunks of this many sessions (0: all at once)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(o.PrintFlags.AllowedFormats(), cobra.ShellCompDirectiveNoFileComp))
	cmd.AddCommand(NewCmdKill(flags, streams), NewCmdCreate(flags, streams))
	return cmd
}

// find lists the sessions of the command's namespace (every namespace with all), only the
// named ones if any.
func find(ctx context.Context, flags *genericclioptions.ConfigFlags, all bool, names []string) (clients.Set, string, *mirrordv1alpha1.MirrordSessionList, error) {
	ns, _, err := flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return clients.Set{}, "", nil, err
	}
	if all {
		ns = metav1.NamespaceAll
	}
	cs, err := clients.ForFlags(flags)
	if err != nil {
		return clients.Set{}, "", nil, err
	}
	list, err := List(ctx, cs, ns, names)
	return cs, ns, list, err
}

// List returns the sessions of namespace sorted by namespace and name; with names, only those,
// and a missing one is an error that says how to list them.
func List(ctx context.Context, cs clients.Set, namespace string, names []string) (*mirrordv1alpha1.MirrordSessionList, error) {
	list, err := cs.Mirrord.MirrordV1alpha1().MirrordSessions(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, cmdutil.ExplainAPIError(err, "list mirrordsessions")
	}
	if len(names) > 0 {
		byName := map[string]mirrordv1alpha1.MirrordSession{}
		for _, s := range list.Items {
			byName[s.Name] = s
		}
		var picked []mirrordv1alpha1.MirrordSession
		for _, n := range names {
			s, ok := byName[n]
			if !ok {
				return nil, fmt.Errorf("no session %q in namespace %s: `kubectl mirrord sessions` lists them (-A for every namespace)", n, namespace)
			}
			picked = append(picked, s)
		}
		list.Items = picked
	}
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i], list.Items[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	list.APIVersion, list.Kind = mirrordv1alpha1.SchemeGroupVersion.String(), "MirrordSessionList"
	return list, nil
}

// PrintTable prints sessions as NAME, OWNER, TARGET, MODE, CLUSTERS, READY, AGE (NAMESPACE
// first when withNamespace), for `status`'s summary.
func PrintTable(w io.Writer, items []mirrordv1alpha1.MirrordSession, withNamespace bool, now time.Time) error {
	header := []string{"NAME", "OWNER", "TARGET", "MODE", "CLUSTERS", "READY", "AGE"}
	if withNamespace {
		header = append([]string{"NAMESPACE"}, header...)
	}
	rows := make([][]string, 0, len(items))
	for _, s := range items {
		row := []string{s.Name, s.Spec.Owner, targetOf(&s), s.Spec.Features.Network.Incoming.Description(),
			mirrordv1alpha1.ClustersDescription(s.Status.Clusters), readyOf(&s), age(s.CreationTimestamp, now)}
		if withNamespace {
			row = append([]string{s.Namespace}, row...)
		}
		rows = append(rows, row)
	}
	return cmdutil.PrintTable(w, header, rows)
}

func targetOf(s *mirrordv1alpha1.MirrordSession) string {
	if s.Status.TargetDescription != "" {
		return s.Status.TargetDescription
	}
	return target.String(s.Spec.Target)
}

// readyOf is ready/total clusters, with the phase when the session is not Ready.
func readyOf(s *mirrordv1alpha1.MirrordSession) string {
	ready := s.Status.ClustersReady
	if ready == "" {
		ready = fmt.Sprintf("0/%d", len(s.Status.Clusters))
	}
	switch s.Status.Phase {
	case mirrordv1alpha1.SessionReady:
		return ready
	case "":
		return ready + " (Pending)"
	default:
		return ready + " (" + string(s.Status.Phase) + ")"
	}
}

func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// CompleteNames completes session names of the current namespace, for the shell.
func CompleteNames(flags *genericclioptions.ConfigFlags) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		ns, _, err := flags.ToRawKubeConfigLoader().Namespace()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cs, err := clients.ForFlags(flags)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		list, err := cs.Mirrord.MirrordV1alpha1().MirrordSessions(ns).List(cmd.Context(), metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, s := range list.Items {
			if strings.HasPrefix(s.Name, toComplete) {
				out = append(out, s.Name+"\t"+targetOf(&s)+" "+s.Spec.Features.Network.Incoming.Description())
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
