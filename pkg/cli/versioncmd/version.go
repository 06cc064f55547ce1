// Package versioncmd implements `kubectl mirrord version`: the plugin's build, and that of the
// controller the current context reaches.
package versioncmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/clients"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/relay"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/version"
)

// Report is what version prints; -o json|yaml prints it as is (the plugin's fields at the top).
type Report struct {
	version.Info
	// Controller is the build of the controller the current context reaches.
	Controller *Controller `json:"controller,omitempty"`
	// ControllerError says why none was reached.
	ControllerError string `json:"controllerError,omitempty"`
}

// Controller is a reached controller's build and installation.
type Controller struct {
	version.Info
	ClusterName string `json:"clusterName"`
	Namespace   string `json:"namespace"`
	Roles       string `json:"roles"`
}

// NewCmdVersion returns the version command.
func NewCmdVersion(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var output, namespace string
	var client bool
	cmd := &cobra.Command{
		Use:   "version [--client]",
		Short: "Print the version of kubectl-mirrord and of the controller it reaches",
		Long: `Prints this plugin's version, and the version, cluster name and roles of the
kubectl-mirrord controller of the current context (asked of its relay through the API
server, as exec reaches it). This plugin is not MetalBear's mirrord plugin of the same
name: the first line says kubectl-mirrord.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch output {
			case "", "json", "yaml":
			default:
				return fmt.Errorf("unknown output format %q: use json or yaml, or leave -o out", output)
			}
			r := Report{Info: version.Get()}
			if !client {
				r.Controller, r.ControllerError = reach(cmd.Context(), flags, namespace)
			}
			return print(streams.Out, r, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	cmd.Flags().BoolVar(&client, "client", false, "the plugin's version only; do not contact the cluster")
	cmd.Flags().StringVar(&namespace, "mirrord-namespace", "mirrord-system", "namespace of kubectl-mirrord's controller")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// reach asks the controller's relay for its build, within five seconds.
func reach(ctx context.Context, flags *genericclioptions.ConfigFlags, namespace string) (*Controller, string) {
	cs, err := clients.ForFlags(flags)
	if err != nil {
		return nil, err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := relay.GetInfo(ctx, cs.Kube, namespace)
	if err != nil {
		return nil, fmt.Sprintf("no kubectl-mirrord controller reached in namespace %s: %v", namespace, err)
	}
	return &Controller{Info: info.Version, ClusterName: info.ClusterName, Namespace: info.Namespace, Roles: info.Roles}, ""
}

func print(w io.Writer, r Report, output string) error {
	switch output {
	case "json":
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	case "yaml":
		b, err := yaml.Marshal(r)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	fmt.Fprintf(w, "Plugin:     kubectl-mirrord %s (commit %s, %s, %s)\n", r.Version, orUnknown(r.Commit), r.GoVersion, r.Platform)
	switch {
	case r.Controller != nil:
		c := r.Controller
		_, err := fmt.Fprintf(w, "Controller: kubectl-mirrord %s (commit %s) in cluster %s, namespace %s, roles %s\n",
			c.Version, orUnknown(c.Commit), c.ClusterName, c.Namespace, c.Roles)
		return err
	case r.ControllerError != "":
		_, err := fmt.Fprintf(w, "Controller: %s\n", r.ControllerError)
		return err
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
