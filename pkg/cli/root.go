// Package cli assembles the kubectl-mirrord command tree. Each verb lives in its own
// package; this one only wires them under the root and the shared kubeconfig flags.
package cli

import (
	"flag"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"
	"k8s.io/kubectl/pkg/cmd/options"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/completion"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/clustercmd"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/controllercmd"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/dbbranchcmd"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/dbbranches"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/exec"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/installcmd"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/ls"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/portforward"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/queues"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/sessionflags"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/sessions"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/status"
	_ "github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/untranslated" // before kubectl's i18n.T calls

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/versioncmd"
)

var rootLong = templates.LongDesc(`
	kubectl mirrord runs a local process in the context of remote Kubernetes workloads,
	across one or many clusters: the target's environment, files, DNS and outgoing network,
	and its incoming traffic, mirrored or stolen.`)

// NewRootCmd returns the `kubectl mirrord` command with every subcommand.
func NewRootCmd(streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	root := &cobra.Command{
		Use:   "kubectl-mirrord",
		Short: "Run local code in the context of remote Kubernetes workloads",
		Long:  rootLong,
		Annotations: map[string]string{
			// Usage lines read "kubectl mirrord ...", as krew plugins should.
			cobra.CommandDisplayNameAnnotation: "kubectl mirrord",
		},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	flags.AddFlags(root.PersistentFlags())
	// mirrord's own flag names (--no-remote-dns, --agent-ttl, --target-namespace, ...) work.
	root.SetGlobalNormalizationFunc(sessionflags.NormalizeFlagName)
	addVerbosity(root)
	registerGlobalCompletions(root, flags)

	root.AddCommand(
		exec.NewCmdExec(flags, streams),
		portforward.NewCmdPortForward(flags, streams),
		ls.NewCmdLs(flags, streams),
		dbbranches.NewCmdDBBranches(flags, streams),
		queues.NewCmdQueues(flags, streams),
		sessions.NewCmdSessions(flags, streams),
		status.NewCmdStatus(flags, streams),
		clustercmd.NewCmdCluster(flags, streams),
		installcmd.NewCmdInstall(flags, streams),
		installcmd.NewCmdUninstall(flags, streams),
		versioncmd.NewCmdVersion(flags, streams),
		controllercmd.NewCmdController(flags),
		dbbranchcmd.NewCmdDBBranch(),
	)
	root.AddCommand(platformCommands()...)
	// As kubectl does: the kubeconfig flags every command takes are listed once, by
	// `kubectl mirrord options`, not on every help page.
	root.AddCommand(options.NewCmdOptions(streams.Out))
	templates.ActsAsRootCommand(root, []string{"options"})
	// cobra adds the visible `completion` command (bash, zsh, fish, powershell) itself.
	return root
}

// addVerbosity adds kubectl's -v: klog's verbosity, for client-go's request logs (-v=6
// shows every API request, -v=8 their bodies) and the controller's and agent's logs.
func addVerbosity(root *cobra.Command) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	v := pflag.PFlagFromGoFlag(fs.Lookup("v"))
	v.Shorthand = "v"
	root.PersistentFlags().AddFlag(v)
}

// registerGlobalCompletions completes -n (the cluster's namespaces), --context, --cluster and
// --user (the kubeconfig's), with kubectl's own functions.
func registerGlobalCompletions(root *cobra.Command, flags *genericclioptions.ConfigFlags) {
	f := kcmdutil.NewFactory(kcmdutil.NewMatchVersionFlags(flags))
	completion.SetFactoryForCompletion(f)
	_ = root.RegisterFlagCompletionFunc("namespace", func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return completion.CompGetResource(f, "namespace", toComplete), cobra.ShellCompDirectiveNoFileComp
	})
	_ = root.RegisterFlagCompletionFunc("context", completion.ContextCompletionFunc)
	_ = root.RegisterFlagCompletionFunc("cluster", completion.ClusterCompletionFunc)
	_ = root.RegisterFlagCompletionFunc("user", completion.UserCompletionFunc)
}
