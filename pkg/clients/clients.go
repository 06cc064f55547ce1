// Package clients hands out the two clientsets every part of kubectl-mirrord talks to a
// cluster with: the Kubernetes one and the one of the project's own API.
package clients

import (
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
)

// Set is a cluster's clients.
type Set struct {
	Kube    kubernetes.Interface
	Mirrord versioned.Interface
}

// ForConfig builds both clientsets from one rest config.
func ForConfig(cfg *rest.Config) (Set, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Set{}, err
	}
	mirrord, err := versioned.NewForConfig(cfg)
	if err != nil {
		return Set{}, err
	}
	return Set{Kube: kube, Mirrord: mirrord}, nil
}

// ForFlags builds both clientsets from the kubeconfig flags of a command.
func ForFlags(flags *genericclioptions.ConfigFlags) (Set, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return Set{}, err
	}
	return ForConfig(cfg)
}
