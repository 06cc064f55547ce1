package sessionflags

import (
	"context"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/clients"
)

// targetKinds are what --target completes first, as kubectl users write them.
var targetKinds = []string{"deploy/", "sts/", "pod/", "ds/", "rs/"}

// RegisterCompletions completes --target (KIND/ then the names of that kind in the namespace
// of the current context) and --container (the containers of the target's pod template).
func RegisterCompletions(cmd *cobra.Command, flags *genericclioptions.ConfigFlags) {
	_ = cmd.RegisterFlagCompletionFunc("target", func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		kind, prefix, ok := strings.Cut(toComplete, "/")
		if !ok {
			var out []string
			for _, k := range targetKinds {
				if strings.HasPrefix(k, toComplete) {
					out = append(out, k)
				}
			}
			return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
		}
		kube, ns, err := kubeFor(flags)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names, err := namesOf(cmd.Context(), kube, ns, kind)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				out = append(out, kind+"/"+n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
}

func kubeFor(flags *genericclioptions.ConfigFlags) (kubernetes.Interface, string, error) {
	ns, _, err := flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", err
	}
	cs, err := clients.ForFlags(flags)
	if err != nil {
		return nil, "", err
	}
	return cs.Kube, ns, nil
}

// namesOf lists the objects of kind (any spelling --target accepts) in namespace.
func namesOf(ctx context.Context, kube kubernetes.Interface, ns, kind string) ([]string, error) {
	var names []string
	opts := metav1.ListOptions{}
	switch strings.ToLower(kind) {
	case "deploy", "deployment", "deployments":
		l, err := kube.AppsV1().Deployments(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case "sts", "statefulset", "statefulsets":
		l, err := kube.AppsV1().StatefulSets(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case "ds", "daemonset", "daemonsets":
		l, err := kube.AppsV1().DaemonSets(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case "rs", "replicaset", "replicasets":
		l, err := kube.AppsV1().ReplicaSets(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case "po", "pod", "pods":
		l, err := kube.CoreV1().Pods(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	}
	return names, nil
}
