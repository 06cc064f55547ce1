// Package clustercmd implements `kubectl mirrord cluster`: admin commands that register
// member clusters with the Primary.
package clustercmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/kubectl/pkg/util/templates"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/clients"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/credentials"
)

var registerExample = templates.Examples(`
	# With the Primary as the current context, register the cluster of context eu-1 as a
	# Workload, and the one of context us-1 as the Default (which is also a Workload)
	kubectl mirrord cluster register eu-1 --member-context eu-1 --workload
	kubectl mirrord cluster register us-1 --member-context us-1 --workload --default`)

// NewCmdCluster returns `cluster` and its subcommands.
func NewCmdCluster(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Register member clusters with the Primary (admins)",
	}
	cmd.AddCommand(newCmdRegister(flags, streams))
	return cmd
}

// RegisterOptions are the flags of `cluster register`.
type RegisterOptions struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams

	Name                string
	MemberKubeconfig    string
	MemberContext       string
	MemberNamespace     string
	ControllerNamespace string
	Server              string
	Workload, Default   bool
	Timeout             time.Duration
}

func newCmdRegister(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RegisterOptions{ConfigFlags: flags, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "register NAME --member-context CONTEXT [--workload] [--default]",
		Short: "Give the Primary (current context) credentials for a member cluster and its roles",
		Long: templates.LongDesc(`
			Registers a member cluster with the Primary of the current context. The member must
			already run the workload (or workload-default) overlay, which creates the
			mirrord-primary ServiceAccount; this command asks the member for a 24-hour token of
			that account (TokenRequest), stores it with the member's CA in a Secret on the
			Primary and creates the MirrordCluster. The Primary renews the token itself before
			a third of its life is left. Running the command again re-keys the member: the new
			token is used at once, the old one expires on its own (delete and re-create the
			ServiceAccount in the member to end it sooner).`),
		Example: registerExample,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.MemberKubeconfig, "member-kubeconfig", "", "kubeconfig holding the member's context (default: the same as the Primary's)")
	f.StringVar(&o.MemberContext, "member-context", "", "kubeconfig context of the member cluster (default: the current context of --member-kubeconfig)")
	f.StringVar(&o.MemberNamespace, "member-namespace", "mirrord-system", "namespace of kubectl-mirrord in the member")
	f.StringVar(&o.ControllerNamespace, "controller-namespace", "mirrord-system", "namespace of kubectl-mirrord on the Primary")
	f.StringVar(&o.Server, "server", "", "API server URL the Primary's pods use to reach the member (default: the member context's server)")
	f.BoolVar(&o.Workload, "workload", true, "the member runs workloads (agents intercept traffic there)")
	f.BoolVar(&o.Default, "default", false, "the member answers env, files, DNS and outgoing traffic (exactly one cluster is the Default)")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Second, "how long to wait for the member's ServiceAccount")
	return cmd
}

// Run registers the member.
func (o *RegisterOptions) Run(ctx context.Context) error {
	if errs := validation.IsDNS1123Label(o.Name); len(errs) > 0 {
		return fmt.Errorf("cluster name %q: %v", o.Name, errs)
	}
	if o.MemberContext == "" && o.MemberKubeconfig == "" {
		return errors.New("say which cluster to register: --member-context CONTEXT (or --member-kubeconfig FILE)")
	}
	if o.Default && !o.Workload {
		return errors.New("--default needs --workload: the Default cluster must run the target's pods")
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.MemberKubeconfig != "" {
		rules.ExplicitPath = o.MemberKubeconfig
	} else if o.ConfigFlags.KubeConfig != nil && *o.ConfigFlags.KubeConfig != "" {
		rules.ExplicitPath = *o.ConfigFlags.KubeConfig
	}
	memberCfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.MemberContext}).ClientConfig()
	if err != nil {
		return fmt.Errorf("member context %q: %w", o.MemberContext, err)
	}
	member, err := kubernetes.NewForConfig(memberCfg)
	if err != nil {
		return err
	}
	// The first token of the Primary's account there, asked with the admin's credentials: the
	// Primary renews it itself from then on (credentials.RequestToken). Waits for the workload
	// overlay's ServiceAccount, which may have been applied a moment ago.
	var token string
	var issued, expiry time.Time
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, o.Timeout, true, func(ctx context.Context) (bool, error) {
		token, issued, expiry, err = credentials.RequestToken(ctx, member, o.MemberNamespace, credentials.MemberTokenLifetime)
		if apierrors.IsNotFound(errors.Unwrap(err)) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("asking the member for a token of %s/%s (install the workload overlay there first; registering needs create on serviceaccounts/token there): %w", o.MemberNamespace, credentials.MemberServiceAccount, err)
	}
	ca := memberCfg.CAData
	if cm, err := member.CoreV1().ConfigMaps(o.MemberNamespace).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{}); err == nil && cm.Data["ca.crt"] != "" {
		ca = []byte(cm.Data["ca.crt"])
	} else if len(ca) == 0 && memberCfg.CAFile != "" {
		if ca, err = os.ReadFile(memberCfg.CAFile); err != nil {
			return fmt.Errorf("the member's CA: %w", err)
		}
	}
	server := o.Server
	if server == "" {
		server = memberCfg.Host
	}

	primaryClients, err := clients.ForFlags(o.ConfigFlags)
	if err != nil {
		return err
	}
	kube, mc := primaryClients.Kube, primaryClients.Mirrord
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "mirrord-cluster-" + o.Name, Namespace: o.ControllerNamespace},
		Data:       credentials.Data(token, ca, issued, expiry),
	}
	if _, err := kube.CoreV1().Secrets(o.ControllerNamespace).Create(ctx, secret, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		_, err = kube.CoreV1().Secrets(o.ControllerNamespace).Update(ctx, secret, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("updating Secret %s/%s on the Primary: %w", o.ControllerNamespace, secret.Name, err)
		}
	} else if err != nil {
		return fmt.Errorf("creating Secret %s/%s on the Primary (is kubectl-mirrord installed there?): %w", o.ControllerNamespace, secret.Name, err)
	}
	cluster := &mirrordv1alpha1.MirrordCluster{
		ObjectMeta: metav1.ObjectMeta{Name: o.Name},
		Spec: mirrordv1alpha1.MirrordClusterSpec{
			Server: server, SecretRef: mirrordv1alpha1.SecretReference{Name: secret.Name},
			Workload: o.Workload, Default: o.Default, Namespace: o.MemberNamespace,
		},
	}
	clusters := mc.MirrordV1alpha1().MirrordClusters()
	if existing, err := clusters.Get(ctx, o.Name, metav1.GetOptions{}); err == nil {
		existing.Spec = cluster.Spec
		_, err = clusters.Update(ctx, existing, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
	} else if apierrors.IsNotFound(err) {
		if _, err := clusters.Create(ctx, cluster, metav1.CreateOptions{}); err != nil {
			return err
		}
	} else {
		return err
	}
	role := "Workload"
	if o.Default {
		role += "+Default"
	}
	fmt.Fprintf(o.Out, "cluster %s registered (%s, %s)\n", o.Name, role, server)
	return nil
}
