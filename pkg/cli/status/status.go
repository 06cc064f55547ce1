// Package status implements `kubectl mirrord status`: this installation's roles, its member
// clusters and the active sessions.
package status

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"
	"sigs.k8s.io/yaml"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/sessions"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/relay"
)

var statusLong = templates.LongDesc(`
	Shows what the current context's cluster is to kubectl-mirrord: the installation's roles
	(asked of its controller, through the API server, the way exec reaches it), the member
	clusters registered with it (reachability, Kubernetes version, last probe) and the
	sessions of the namespace (-A: all).`)

// Options are the flags of `status`.
type Options struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams

	MirrordNamespace string
	AllNamespaces    bool
	Output           string
}

// Report is what status finds; -o json|yaml prints it as is.
type Report struct {
	Server       string                           `json:"server"`
	Installation *relay.Info                      `json:"installation,omitempty"`
	Problem      string                           `json:"problem,omitempty"`
	Members      []Member                         `json:"members"`
	MembersError string                           `json:"membersError,omitempty"`
	Namespace    string                           `json:"namespace"`
	Sessions     []mirrordv1alpha1.MirrordSession `json:"sessions"`
}

// Member is one registered member cluster.
type Member struct {
	Name              string       `json:"name"`
	Roles             []string     `json:"roles"`
	Server            string       `json:"server"`
	Reachable         string       `json:"reachable"`
	Message           string       `json:"message,omitempty"`
	KubernetesVersion string       `json:"kubernetesVersion,omitempty"`
	LastProbeTime     *metav1.Time `json:"lastProbeTime,omitempty"`
}

// NewCmdStatus returns the status command.
func NewCmdStatus(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{ConfigFlags: flags, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show this installation's roles, member clusters and active sessions",
		Long:  statusLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch o.Output {
			case "", "json", "yaml":
			default:
				return fmt.Errorf("--output %q: use json or yaml (or nothing, for text)", o.Output)
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json or yaml (default: text)")
	cmd.Flags().StringVar(&o.MirrordNamespace, "mirrord-namespace", "mirrord-system", "namespace of kubectl-mirrord's controller")
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "show sessions of every namespace")
	return cmd
}

// Run gathers the report and prints it. A cluster without kubectl-mirrord is an error; a
// part the user may not read is reported as such and the rest still shown.
func (o *Options) Run(ctx context.Context) error {
	primary, err := cmdutil.ConnectPrimary(o.ConfigFlags)
	if err != nil {
		return err
	}
	cfg, cs, ns := primary.Config, primary.Clients, primary.Namespace
	r := Report{Server: cfg.Host, Namespace: ns, Members: []Member{}, Sessions: []mirrordv1alpha1.MirrordSession{}}
	if o.AllNamespaces {
		r.Namespace = metav1.NamespaceAll
	}
	if info, err := relay.GetInfo(ctx, cs.Kube, o.MirrordNamespace); err != nil {
		r.Problem = fmt.Sprintf("cannot reach kubectl-mirrord's controller in namespace %s through the API server (%v): is it installed here (kubectl get pods -n %s)?", o.MirrordNamespace, err, o.MirrordNamespace)
	} else {
		r.Installation = &info
	}
	if clusters, err := cs.Mirrord.MirrordV1alpha1().MirrordClusters().List(ctx, metav1.ListOptions{}); err != nil {
		r.MembersError = cmdutil.ExplainAPIError(err, "list mirrordclusters").Error()
	} else {
		for _, c := range clusters.Items {
			r.Members = append(r.Members, memberOf(&c))
		}
		sort.Slice(r.Members, func(i, j int) bool { return r.Members[i].Name < r.Members[j].Name })
	}
	list, err := sessions.List(ctx, cs, r.Namespace, nil)
	if err != nil {
		if r.Installation == nil {
			return fmt.Errorf("%s\n%w", r.Problem, err)
		}
		return err
	}
	r.Sessions = list.Items

	switch o.Output {
	case "json":
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.Out, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(r)
		if err != nil {
			return err
		}
		_, err = o.Out.Write(b)
		return err
	}
	return r.Print(o.Out, o.AllNamespaces, time.Now())
}

func memberOf(c *mirrordv1alpha1.MirrordCluster) Member {
	m := Member{Name: c.Name, Server: c.Spec.Server, Reachable: "Unknown",
		KubernetesVersion: c.Status.KubernetesVersion, LastProbeTime: c.Status.LastProbeTime}
	if c.Spec.Workload {
		m.Roles = append(m.Roles, string(mirrordv1alpha1.ClusterRoleWorkload))
	}
	if c.Spec.Default {
		m.Roles = append(m.Roles, string(mirrordv1alpha1.ClusterRoleDefault))
	}
	if cond := meta.FindStatusCondition(c.Status.Conditions, mirrordv1alpha1.ConditionReachable); cond != nil {
		m.Reachable = string(cond.Status)
		if cond.Status != metav1.ConditionTrue {
			m.Message = cond.Message
		}
	}
	return m
}

// Print writes the report as text.
func (r *Report) Print(w io.Writer, allNamespaces bool, now time.Time) error {
	fmt.Fprintf(w, "Cluster:     %s\n", r.Server)
	if i := r.Installation; i != nil {
		fmt.Fprintf(w, "Roles:       %s (cluster name %s)\n", i.Roles, i.ClusterName)
		fmt.Fprintf(w, "Controller:  %s in namespace %s, answering from pod %s\n", i.Version.Version, i.Namespace, i.Pod)
		if i.Problem != "" {
			fmt.Fprintf(w, "Problem:     sessions fail until an admin fixes this: %s\n", i.Problem)
		}
	} else {
		fmt.Fprintf(w, "Controller:  %s\n", r.Problem)
	}
	if r.Installation != nil && !r.Installation.Primary {
		fmt.Fprintln(w, "\nThis cluster is a member, not the Primary: sessions are created on the Primary. Use the Primary's context.")
	}

	fmt.Fprintln(w, "\nMember clusters:")
	switch {
	case r.MembersError != "":
		fmt.Fprintf(w, "  %s\n", r.MembersError)
	case len(r.Members) == 0:
		fmt.Fprintln(w, "  none registered (admins: kubectl mirrord cluster register NAME --member-context CONTEXT)")
	default:
		rows := make([][]string, 0, len(r.Members))
		for _, m := range r.Members {
			probe := "never"
			if m.LastProbeTime != nil {
				probe = duration.HumanDuration(now.Sub(m.LastProbeTime.Time)) + " ago"
			}
			reach := m.Reachable
			if m.Message != "" {
				reach += ": " + m.Message
			}
			rows = append(rows, []string{m.Name, strings.Join(m.Roles, "+"), orNone(m.KubernetesVersion), probe, reach, m.Server})
		}
		if err := cmdutil.PrintTable(indent{w}, []string{"NAME", "ROLES", "KUBERNETES", "LAST PROBE", "REACHABLE", "SERVER"}, rows); err != nil {
			return err
		}
	}

	where := "namespace " + r.Namespace
	if allNamespaces {
		where = "all namespaces"
	}
	phases := map[mirrordv1alpha1.SessionPhase]int{}
	for _, s := range r.Sessions {
		phases[s.Status.Phase]++
	}
	var counts []string
	for _, p := range []mirrordv1alpha1.SessionPhase{mirrordv1alpha1.SessionReady, mirrordv1alpha1.SessionPending, mirrordv1alpha1.SessionDegraded, mirrordv1alpha1.SessionFailed, mirrordv1alpha1.SessionTerminating} {
		if phases[p] > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", phases[p], p))
		}
	}
	summary := ""
	if len(counts) > 0 {
		summary = " (" + strings.Join(counts, ", ") + ")"
	}
	fmt.Fprintf(w, "\nSessions in %s: %d%s\n", where, len(r.Sessions), summary)
	if len(r.Sessions) == 0 {
		return nil
	}
	return sessions.PrintTable(indent{w}, r.Sessions, allNamespaces, now)
}

func orNone(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}

// indent prefixes each write with two spaces; PrintTable writes whole lines.
type indent struct{ w io.Writer }

func (i indent) Write(p []byte) (int, error) {
	if _, err := io.WriteString(i.w, "  "); err != nil {
		return 0, err
	}
	return i.w.Write(p)
}
