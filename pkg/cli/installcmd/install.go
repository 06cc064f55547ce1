// Package installcmd implements `kubectl mirrord install` and `uninstall`: the admin's one
// command per cluster, rendering the overlays the binary carries (pkg/install).
package installcmd

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/install"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/version"
)

var installExample = templates.Examples(`
	# One cluster with every role
	kubectl mirrord install

	# Several clusters: each member first, then the Primary, then register the members
	kubectl mirrord install --context us-1 --role workload-default
	kubectl mirrord install --context eu-1 --role workload
	kubectl mirrord install --context hub --role primary-management-only --cluster-name hub
	kubectl mirrord cluster register us-1 --context hub --member-context us-1 --workload --default

	# Print what would be applied (for GitOps), from your own registry
	kubectl mirrord install --role workload --image registry.example/kubectl-mirrord:v0.1.0 -o yaml`)

// InstallOptions are the flags of `install`.
type InstallOptions struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams

	Role           string
	ClusterName    string
	Image          string
	ControllerArgs []string
	Output         string
	Timeout        time.Duration
}

// NewCmdInstall returns `install`.
func NewCmdInstall(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &InstallOptions{ConfigFlags: flags, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "install [--role ROLE] [--cluster-name NAME] [--image REF] [-o yaml]",
		Short: "Install kubectl-mirrord's controller and CRDs on the current cluster (admins)",
		Long: templates.LongDesc(`
			Installs one role of kubectl-mirrord on the cluster of the current context: the
			kustomize overlay of that role (the same files as kustomize/overlays/ROLE of the
			release), with the controller's image pinned to this plugin's version. It applies
			with server-side apply, owning what it sets, and waits until the controller is
			ready. Running it again upgrades in place. With -o yaml it prints the manifests
			instead, for GitOps or review.

			Roles: single-cluster (every role in one cluster), primary (coordinates sessions
			and runs workloads), primary-management-only (only coordinates), workload (runs
			targets), workload-default (runs targets and answers for the environment, files,
			DNS and outgoing traffic of sessions).`),
		Example: installExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Role, "role", "single-cluster", "the role: "+strings.Join(install.Overlays, ", "))
	f.StringVar(&o.ClusterName, "cluster-name", "", "this cluster's name in sessions' status when it is the Primary (default local)")
	f.StringVar(&o.Image, "image", "", "the controller's and agents' image (default "+install.ImageName+":<this plugin's version>)")
	f.StringArrayVar(&o.ControllerArgs, "controller-flag", nil, "a flag for the controller, e.g. --controller-flag=--agent-max-procs=2; repeatable")
	f.StringVarP(&o.Output, "output", "o", "", "yaml: print the manifests instead of applying them")
	f.DurationVar(&o.Timeout, "timeout", 3*time.Minute, "how long to wait for the controller")
	_ = cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions(install.Overlays, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"yaml"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// gitDescribed is a build past a tag (v1.2.3-4-gabc1234, maybe -dirty): shaped like a
// release's tag, with no image of its own.
var gitDescribed = regexp.MustCompile(`-\d+-g[0-9a-f]{7,}(-dirty)?$|-dirty$`)

// Options checks the flags and turns them into rendering options.
func (o *InstallOptions) Options() (install.Options, error) {
	r := install.Options{Image: o.Image, ClusterName: o.ClusterName, ControllerArgs: o.ControllerArgs}
	if r.Image == "" {
		img, err := DefaultImage(version.ImageRepository, version.Version)
		if err != nil {
			return r, err
		}
		r.Image = img
	}
	if o.ClusterName != "" {
		if errs := validation.IsDNS1123Label(o.ClusterName); len(errs) > 0 {
			return r, fmt.Errorf("--cluster-name %q: %s", o.ClusterName, strings.Join(errs, "; "))
		}
	}
	switch o.Output {
	case "", "yaml":
	default:
		return r, fmt.Errorf("--output %q: the only format is yaml (or none, to apply)", o.Output)
	}
	return r, nil
}

// DefaultImage is the image a plugin of version v installs: its own release's.
func DefaultImage(repository, v string) (string, error) {
	if !version.IsReleaseTag(v) || gitDescribed.MatchString(v) {
		return "", fmt.Errorf("this plugin is a development build (version %q) and has no released image: give --image REGISTRY/kubectl-mirrord:TAG (make image builds one), or install a release of the plugin", v)
	}
	return repository + ":" + v, nil
}

// Run renders, then prints or applies.
func (o *InstallOptions) Run(ctx context.Context) error {
	opts, err := o.Options()
	if err != nil {
		return err
	}
	y, err := install.Render(o.Role, opts)
	if err != nil {
		return err
	}
	if o.Output == "yaml" {
		_, err := o.Out.Write(y)
		return err
	}
	objs, err := install.Objects(y)
	if err != nil {
		return err
	}
	c, err := cluster(o.ConfigFlags, o.ErrOut)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	fmt.Fprintf(o.ErrOut, "installing role %s with image %s\n", o.Role, opts.Image)
	if err := install.Apply(ctx, c, objs); err != nil {
		return cmdutil.ExplainAPIError(err, "install kubectl-mirrord")
	}
	if err := install.WaitReady(ctx, c); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "kubectl-mirrord %s installed (role %s)\n", version.Version, o.Role)
	return nil
}

func cluster(flags *genericclioptions.ConfigFlags, progress io.Writer) (install.Cluster, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return install.Cluster{}, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return install.Cluster{}, err
	}
	mapper, err := flags.ToRESTMapper()
	if err != nil {
		return install.Cluster{}, err
	}
	return install.Cluster{Dynamic: dyn, Mapper: mapper, Progress: progress}, nil
}

// UninstallOptions are the flags of `uninstall`.
type UninstallOptions struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams

	Force, KeepCRDs bool
	Timeout         time.Duration
}

// NewCmdUninstall returns `uninstall`.
func NewCmdUninstall(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &UninstallOptions{ConfigFlags: flags, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "uninstall [--force] [--keep-crds]",
		Short: "Remove kubectl-mirrord from the current cluster (admins)",
		Long: templates.LongDesc(`
			Removes everything any role of kubectl-mirrord installs on the cluster of the
			current context: the controller, its namespace (with the credentials and leases
			it made there), its RBAC and admission policies, and the CRDs with every session,
			policy and registered cluster. It refuses while sessions run; --force ends them
			first (their agents end with them). --keep-crds keeps the CRDs, and so the
			policies and registered clusters, for a reinstall.`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVar(&o.Force, "force", false, "end running sessions instead of refusing")
	cmd.Flags().BoolVar(&o.KeepCRDs, "keep-crds", false, "keep the CRDs, with the policies, profiles and registered clusters")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 3*time.Minute, "how long to wait for everything to be gone")
	return cmd
}

// Run uninstalls.
func (o *UninstallOptions) Run(ctx context.Context) error {
	c, err := cluster(o.ConfigFlags, o.ErrOut)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := install.Uninstall(ctx, c, install.UninstallOptions{Force: o.Force, KeepCRDs: o.KeepCRDs}); err != nil {
		return cmdutil.ExplainAPIError(err, "uninstall kubectl-mirrord")
	}
	fmt.Fprintln(o.Out, "kubectl-mirrord uninstalled")
	return nil
}
