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
	"k8s.io/kubectl/pkg/util/templates"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/clients"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned/scheme"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

var (
	sessionsExample = templates.Examples(`
		# List the sessions of the current namespace
		kubectl mirrord sessions

		# List every session, as YAML
		kubectl mirrord sessions -A -o yaml

		# End one session, or all of them
		kubectl mirrord sessions kill alice-api-x7k2
		kubectl mirrord sessions kill --all`)
)

// ListOptions holds the flags of `kubectl mirrord sessions`.
type ListOptions struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams

	AllNamespaces bool
	PrintFlags    *genericclioptions.PrintFlags
}

// NewCmdSessions returns the sessions command and its subcommands.
func NewCmdSessions(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ListOptions{ConfigFlags: flags, IOStreams: streams,
		PrintFlags: genericclioptions.NewPrintFlags("").WithTypeSetter(scheme.Scheme)}
	cmd := &cobra.Command{
		Use:     "sessions [NAME...]",
		Aliases: []string{"session"},
		Short:   "List mirrord sessions on the Primary cluster",
		Example: sessionsExample,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.Run(cmd.Context(), args)
		},
		ValidArgsFunction: CompleteNames(flags),
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "list sessions in every namespace")
	o.PrintFlags.AddFlags(cmd)
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

// Run lists the sessions (only those named, if any).
func (o *ListOptions) Run(ctx context.Context, names []string) error {
	_, ns, list, err := find(ctx, o.ConfigFlags, o.AllNamespaces, names)
	if err != nil {
		return err
	}
	if o.PrintFlags.OutputFormat != nil && *o.PrintFlags.OutputFormat != "" {
		p, err := o.PrintFlags.ToPrinter()
		if err != nil {
			return err
		}
		if len(names) == 1 && len(list.Items) == 1 {
			return p.PrintObj(&list.Items[0], o.Out)
		}
		return p.PrintObj(list, o.Out)
	}
	if len(list.Items) == 0 {
		where := "in namespace " + ns
		if o.AllNamespaces {
			where = "in any namespace"
		}
		fmt.Fprintf(o.ErrOut, "No sessions %s.\n", where)
		return nil
	}
	return PrintTable(o.Out, list.Items, o.AllNamespaces, time.Now())
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
// first when withNamespace).
func PrintTable(w io.Writer, items []mirrordv1alpha1.MirrordSession, withNamespace bool, now time.Time) error {
	header := []string{"NAME", "OWNER", "TARGET", "MODE", "CLUSTERS", "READY", "AGE"}
	if withNamespace {
		header = append([]string{"NAMESPACE"}, header...)
	}
	rows := make([][]string, 0, len(items))
	for _, s := range items {
		row := []string{s.Name, s.Spec.Owner, targetOf(&s), Mode(s.Spec.Features.Network.Incoming), clustersOf(&s), readyOf(&s), age(s.CreationTimestamp, now)}
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

// Mode describes incoming traffic handling: mirror, steal, off, or steal with its filter.
func Mode(in mirrordv1alpha1.IncomingFeature) string {
	mode := string(in.Mode)
	if mode == "" {
		mode = string(mirrordv1alpha1.IncomingModeMirror)
	}
	if f := in.HTTPFilter; f != nil && in.Mode == mirrordv1alpha1.IncomingModeSteal {
		var parts []string
		for _, kv := range [][2]string{{"header", f.Header}, {"path", f.Path}, {"method", f.Method}} {
			if kv[1] != "" {
				parts = append(parts, kv[0]+"="+kv[1])
			}
		}
		mode += "(" + strings.Join(parts, ",") + ")"
	}
	return mode
}

// clustersOf lists the session's clusters with their roles: c2(D,W),c3(W).
func clustersOf(s *mirrordv1alpha1.MirrordSession) string {
	if len(s.Status.Clusters) == 0 {
		return "<none>"
	}
	var parts []string
	for _, c := range s.Status.Clusters {
		var roles []string
		for _, r := range c.Roles {
			roles = append(roles, string(r)[:1])
		}
		sort.Strings(roles)
		parts = append(parts, fmt.Sprintf("%s(%s)", c.Name, strings.Join(roles, ",")))
	}
	return strings.Join(parts, ",")
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
				out = append(out, s.Name+"\t"+targetOf(&s)+" "+Mode(s.Spec.Features.Network.Incoming))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
