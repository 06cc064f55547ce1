// Package ls implements `kubectl mirrord ls`, mirrord's command: the targets of a namespace
// across every Workload cluster that the user may run sessions on. The CLI asks the Primary
// (a MirrordTargetQuery), which asks each member with its own credentials there; the user
// needs no access to the member clusters.
package ls

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	toolswatch "k8s.io/client-go/tools/watch"
	"k8s.io/kubectl/pkg/util/templates"
	"sigs.k8s.io/yaml"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/config"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/session"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

// RichOutputEnv makes `-o json` print mirrord's rich form (targets with availability, the
// namespace, the namespaces), as mirrord's IDE extensions ask with it.
const RichOutputEnv = "MIRRORD_LS_RICH_OUTPUT"

// TargetTypesEnv narrows the kinds listed when -t is not given (a JSON list), as mirrord's
// IDE extensions set it.
const TargetTypesEnv = "MIRRORD_LS_TARGET_TYPES"

var lsLong = templates.LongDesc(`
	Lists the targets of the namespace that you may run sessions on, in every Workload
	cluster: deployments, rollouts, statefulsets, cronjobs, jobs, services, replicasets,
	daemonsets, and running pods (one line per container of a pod with several).

	The Primary answers: it asks each member cluster with its own credentials there, and keeps
	the targets RBAC on the Primary lets you run sessions on (the "mirrord" verb). You need no
	access to the member clusters.

	-o json prints what mirrord's own "mirrord ls" prints (a JSON list of paths; with
	MIRRORD_LS_RICH_OUTPUT=true, mirrord's object form), so mirrord's IDE extensions can read it.`)

var lsExample = templates.Examples(`
	# The targets of the current namespace, with the clusters each is in
	kubectl mirrord ls

	# Deployments and pods of namespace shop, as mirrord prints them
	kubectl mirrord ls -n shop -t deployment -t pod -o json`)

// Options are the flags of `ls`.
type Options struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams

	ConfigFile string
	Types      []string
	Output     string
	Timeout    time.Duration
}

// NewCmdLs returns the ls command.
func NewCmdLs(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{ConfigFlags: flags, IOStreams: streams}
	cmd := &cobra.Command{
		Use:     "ls [-t TYPE]... [-o json|yaml|name]",
		Aliases: []string{"list"},
		Short:   "List the targets you may run sessions on, across the Workload clusters",
		Long:    lsLong,
		Example: lsExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.ConfigFile, "config-file", "f", "", "mirrord config file: its target.namespace (and kube context) are used where flags do not say")
	f.StringArrayVarP(&o.Types, "target-type", "t", nil, "list only this kind of target (deployment, rollout, statefulset, cronjob, job, service, replicaset, daemonset, pod); repeatable")
	f.StringVarP(&o.Output, "output", "o", "", "json (mirrord's form), yaml (the whole answer) or name (one path per line); a table when empty")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Second, "how long to wait for the Primary's answer")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"json", "yaml", "name"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("target-type", cobra.FixedCompletions(typeNames, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

var typeNames = []string{"deployment", "rollout", "statefulset", "cronjob", "job", "service", "replicaset", "daemonset", "pod"}

// Kinds reads -t values (or, without any, MIRRORD_LS_TARGET_TYPES's JSON list) into the
// kinds a query asks for; none is every kind.
func Kinds(types []string, env string) ([]mirrordv1alpha1.TargetKind, error) {
	if len(types) == 0 && env != "" {
		if err := json.Unmarshal([]byte(env), &types); err != nil {
			return nil, fmt.Errorf("$%s: want a JSON list of target types, like [\"deployment\", \"pod\"]: %w", TargetTypesEnv, err)
		}
	}
	var kinds []mirrordv1alpha1.TargetKind
	for _, t := range types {
		for _, one := range strings.Split(t, ",") {
			k, ok := target.Kind(strings.TrimSpace(one))
			if !ok || k == mirrordv1alpha1.TargetKindLabels {
				return nil, fmt.Errorf("target type %q: use one of %s", one, strings.Join(typeNames, ", "))
			}
			if !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	return kinds, nil
}

// Run asks the Primary and prints its answer.
func (o *Options) Run(ctx context.Context) error {
	switch o.Output {
	case "", "json", "yaml", "name":
	default:
		return fmt.Errorf("--output %q: use json, yaml or name (or nothing, for a table)", o.Output)
	}
	kinds, err := Kinds(o.Types, os.Getenv(TargetTypesEnv))
	if err != nil {
		return err
	}
	if err := o.applyConfigFile(); err != nil {
		return err
	}
	primary, err := cmdutil.ConnectPrimary(o.ConfigFlags)
	if err != nil {
		return err
	}
	owner, err := session.Whoami(ctx, primary.Clients.Kube)
	if err != nil {
		return err
	}
	st, err := Query(ctx, primary.Clients.Mirrord, primary.Namespace, owner, kinds, o.Timeout)
	if err != nil {
		return err
	}
	for _, c := range st.Clusters {
		if c.Problem != "" {
			fmt.Fprintf(o.ErrOut, "mirrord: cluster %s: %s\n", c.Name, c.Problem)
		}
	}
	if st.Message != "" {
		fmt.Fprintf(o.ErrOut, "mirrord: %s\n", st.Message)
	}
	if st.Phase == mirrordv1alpha1.TargetQueryFailed {
		return fmt.Errorf("the Primary could not list targets in namespace %s: %s", primary.Namespace, st.Message)
	}
	var namespaces []string
	if o.Output == "json" && rich() {
		namespaces = o.namespaces(ctx, primary)
	}
	return Print(o.Out, o.Output, primary.Namespace, namespaces, st)
}

// applyConfigFile takes the config file's namespace and kube context where flags do not say.
func (o *Options) applyConfigFile() error {
	path := o.ConfigFile
	if path == "" {
		path = os.Getenv(config.EnvVar)
	}
	if path == "" {
		return nil
	}
	c, err := config.Load(path)
	if err != nil {
		return err
	}
	set := func(dst *string, v *string) {
		if dst != nil && *dst == "" && v != nil {
			*dst = *v
		}
	}
	set(o.ConfigFlags.Namespace, c.Namespace)
	set(o.ConfigFlags.Context, c.KubeContext)
	set(o.ConfigFlags.KubeConfig, c.Kubeconfig)
	return nil
}

func rich() bool {
	v, _ := strconv.ParseBool(os.Getenv(RichOutputEnv))
	return v
}

// namespaces are the Primary's namespaces the user may list, for mirrord's rich form; just
// the current one when they may not.
func (o *Options) namespaces(ctx context.Context, p cmdutil.Primary) []string {
	l, err := p.Clients.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return []string{p.Namespace}
	}
	var out []string
	for _, n := range l.Items {
		out = append(out, n.Name)
	}
	return out
}

// Query creates a MirrordTargetQuery in namespace, waits for the Primary's answer and
// deletes the query (the Primary deletes one left behind minutes later).
func Query(ctx context.Context, c versioned.Interface, namespace string, owner session.Owner, kinds []mirrordv1alpha1.TargetKind, timeout time.Duration) (mirrordv1alpha1.MirrordTargetQueryStatus, error) {
	queries := c.MirrordV1alpha1().MirrordTargetQueries(namespace)
	q, err := queries.Create(ctx, &mirrordv1alpha1.MirrordTargetQuery{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "ls-"},
		Spec:       mirrordv1alpha1.MirrordTargetQuerySpec{Owner: owner.Name, OwnerGroups: owner.Groups, Kinds: kinds},
	}, metav1.CreateOptions{})
	if err != nil {
		return mirrordv1alpha1.MirrordTargetQueryStatus{}, cmdutil.ExplainAPIError(err, "create mirrordtargetqueries")
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = queries.Delete(dctx, q.Name, metav1.DeleteOptions{})
	}()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lw := session.OneObject(q.Name, queries.List, queries.Watch)
	var st mirrordv1alpha1.MirrordTargetQueryStatus
	_, err = toolswatch.UntilWithSync(wctx, lw, &mirrordv1alpha1.MirrordTargetQuery{}, nil, func(e watch.Event) (bool, error) {
		if e.Type == watch.Deleted {
			return false, errors.New("the query was deleted before the Primary answered it")
		}
		got, ok := e.Object.(*mirrordv1alpha1.MirrordTargetQuery)
		if !ok || got.Status.Phase == "" {
			return false, nil
		}
		st = got.Status
		return true, nil
	})
	if wctx.Err() != nil && ctx.Err() == nil {
		return st, fmt.Errorf("the Primary did not answer within %s: is its controller running? (kubectl mirrord status)", timeout)
	}
	return st, err
}

// richTarget and richOutput are mirrord's rich `ls` form.
type richTarget struct {
	Path      string `json:"path"`
	Available bool   `json:"available"`
}

type richOutput struct {
	Targets          []richTarget `json:"targets"`
	CurrentNamespace string       `json:"current_namespace"`
	Namespaces       []string     `json:"namespaces"`
}

// Print writes st as output says: a table of paths and clusters; json as mirrord prints it
// (with namespaces, its rich form); yaml the whole answer; name one path per line.
func Print(w io.Writer, output, namespace string, namespaces []string, st mirrordv1alpha1.MirrordTargetQueryStatus) error {
	paths := make([]string, 0, len(st.Targets))
	for _, t := range st.Targets {
		paths = append(paths, t.Path)
	}
	switch output {
	case "json":
		var v any = paths
		if namespaces != nil {
			r := richOutput{Targets: []richTarget{}, CurrentNamespace: namespace, Namespaces: namespaces}
			for _, p := range paths {
				r.Targets = append(r.Targets, richTarget{Path: p, Available: true})
			}
			v = r
		}
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "yaml":
		st.CompletedAt = nil
		b, err := yaml.Marshal(st)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case "name":
		for _, p := range paths {
			if _, err := fmt.Fprintln(w, p); err != nil {
				return err
			}
		}
		return nil
	}
	if len(st.Targets) == 0 {
		_, err := fmt.Fprintf(w, "No targets you may run sessions on in namespace %s.\n", namespace)
		return err
	}
	rows := make([][]string, 0, len(st.Targets))
	for _, t := range st.Targets {
		rows = append(rows, []string{t.Path, strings.Join(t.Clusters, ",")})
	}
	return cmdutil.PrintTable(w, []string{"TARGET", "CLUSTERS"}, rows)
}
