package sessionflags

import (
	"context"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/clients"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

// targetKinds are what --target completes first, as kubectl users write them.
var targetKinds = []string{"deploy/", "sts/", "pod/", "ds/", "rs/", "job/", "cronjob/", "svc/", "targetless"}

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
	_ = cmd.RegisterFlagCompletionFunc("container", func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		t, _ := cmd.Flags().GetString("target")
		kind, name, ok := strings.Cut(t, "/")
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		kube, ns, err := kubeFor(flags)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		containers, err := containersOf(cmd.Context(), kube, ns, kind, strings.SplitN(name, "/", 2)[0])
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, c := range containers {
			if strings.HasPrefix(c, toComplete) {
				out = append(out, c)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
	for flag, values := range map[string][]string{"incoming": {"mirror", "steal", "off"}, "fs-mode": {"read", "write", "local"}} {
		_ = cmd.RegisterFlagCompletionFunc(flag, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
	}
}

// containersOf lists the containers of the pod template of a workload (any spelling --target
// accepts), or of a pod.
func containersOf(ctx context.Context, kube kubernetes.Interface, ns, kind, name string) ([]string, error) {
	k, _ := target.Kind(kind)
	var spec *corev1.PodSpec
	opts := metav1.GetOptions{}
	switch k {
	case mirrordv1alpha1.TargetKindDeployment:
		o, err := kube.AppsV1().Deployments(ns).Get(ctx, name, opts)
		if err != nil {
			return nil, err
		}
		spec = &o.Spec.Template.Spec
	case mirrordv1alpha1.TargetKindStatefulSet:
		o, err := kube.AppsV1().StatefulSets(ns).Get(ctx, name, opts)
		if err != nil {
			return nil, err
		}
		spec = &o.Spec.Template.Spec
	case mirrordv1alpha1.TargetKindDaemonSet:
		o, err := kube.AppsV1().DaemonSets(ns).Get(ctx, name, opts)
		if err != nil {
			return nil, err
		}
		spec = &o.Spec.Template.Spec
	case mirrordv1alpha1.TargetKindReplicaSet:
		o, err := kube.AppsV1().ReplicaSets(ns).Get(ctx, name, opts)
		if err != nil {
			return nil, err
		}
		spec = &o.Spec.Template.Spec
	case mirrordv1alpha1.TargetKindPod:
		o, err := kube.CoreV1().Pods(ns).Get(ctx, name, opts)
		if err != nil {
			return nil, err
		}
		spec = &o.Spec
	case mirrordv1alpha1.TargetKindJob:
		o, err := kube.BatchV1().Jobs(ns).Get(ctx, name, opts)
		if err != nil {
			return nil, err
		}
		spec = &o.Spec.Template.Spec
	case mirrordv1alpha1.TargetKindCronJob:
		o, err := kube.BatchV1().CronJobs(ns).Get(ctx, name, opts)
		if err != nil {
			return nil, err
		}
		spec = &o.Spec.JobTemplate.Spec.Template.Spec
	default:
		return nil, nil
	}
	names := make([]string, 0, len(spec.Containers))
	for _, c := range spec.Containers {
		names = append(names, c.Name)
	}
	return names, nil
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
	k, _ := target.Kind(kind)
	var names []string
	opts := metav1.ListOptions{}
	switch k {
	case mirrordv1alpha1.TargetKindDeployment:
		l, err := kube.AppsV1().Deployments(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case mirrordv1alpha1.TargetKindStatefulSet:
		l, err := kube.AppsV1().StatefulSets(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case mirrordv1alpha1.TargetKindDaemonSet:
		l, err := kube.AppsV1().DaemonSets(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case mirrordv1alpha1.TargetKindReplicaSet:
		l, err := kube.AppsV1().ReplicaSets(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case mirrordv1alpha1.TargetKindJob:
		l, err := kube.BatchV1().Jobs(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case mirrordv1alpha1.TargetKindCronJob:
		l, err := kube.BatchV1().CronJobs(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case mirrordv1alpha1.TargetKindService:
		l, err := kube.CoreV1().Services(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case mirrordv1alpha1.TargetKindPod:
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
