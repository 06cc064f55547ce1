// Package queues implements `kubectl mirrord queues`: the queue registries of a namespace
// (mirrord's `mirrord queues`).
package queues

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/cmd/get"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
)

// Resource is the registries' resource as kubectl names it.
const Resource = "mirrordworkloadqueueregistries.kubectl-mirrord.io"

var example = templates.Examples(`
	# The queue registries of the current namespace: each consumer and its kind
	kubectl mirrord queues

	# One registry whole (its queues, where their names come from, its state in each cluster)
	kubectl mirrord queues orders-consumer -o yaml`)

// NewCmdQueues returns the queues command: kubectl get itself on MirrordWorkloadQueueRegistries
// (the CRD's columns, -o, -A, -w, --sort-by).
func NewCmdQueues(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := get.NewGetOptions("kubectl mirrord", streams)
	f := kcmdutil.NewFactory(kcmdutil.NewMatchVersionFlags(flags))
	cmd := &cobra.Command{
		Use:   "queues [NAME...]",
		Short: "List queue registries on the Primary cluster",
		Long: templates.LongDesc(`
			Lists the MirrordWorkloadQueueRegistries of the current namespace (-A: every
			namespace), as kubectl get mirrordworkloadqueueregistries does: which workload
			consumes which queues, as an admin declared it. Queue splitting itself
			(feature.split_queues) is not made by this version yet.`),
		Example: example,
		RunE: func(cmd *cobra.Command, args []string) error {
			args = append([]string{Resource}, args...)
			if err := o.Complete(f, cmd, args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return cmdutil.ExplainAPIError(o.Run(f, args), "list mirrordworkloadqueueregistries")
		},
	}
	o.PrintFlags.AddFlags(cmd)
	cmd.Flags().BoolVarP(&o.Watch, "watch", "w", false, "after listing, watch for changes")
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "list registries in every namespace")
	return cmd
}
