// Package cmdutil holds what every kubectl-mirrord command shares: exit codes, API error
// explanations and kubectl-style tables.
package cmdutil

import (
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/clients"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
)

// Primary is what a command needs of the Primary the kubeconfig flags name: its REST config,
// clients, and the namespace of the current context (or -n).
type Primary struct {
	Config    *rest.Config
	Clients   clients.Set
	Namespace string
}

// ConnectPrimary reads the kubeconfig flags into a Primary.
func ConnectPrimary(flags *genericclioptions.ConfigFlags) (Primary, error) {
	var p Primary
	var err error
	if p.Config, err = flags.ToRESTConfig(); err != nil {
		return p, err
	}
	if p.Clients, err = clients.ForConfig(p.Config); err != nil {
		return p, err
	}
	p.Namespace, _, err = flags.ToRawKubeConfigLoader().Namespace()
	return p, err
}
