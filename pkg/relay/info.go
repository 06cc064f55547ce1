package relay

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/version"
)

// InfoPath is where a relay describes its installation (GET, JSON). Whoever may open a
// session may read it, through the same service proxy: `kubectl mirrord status` does.
const InfoPath = "/info"

// Info describes the installation a relay belongs to.
type Info struct {
	ClusterName    string `json:"clusterName"`
	Roles          string `json:"roles"`
	Primary        bool   `json:"primary"`
	Workload       bool   `json:"workload"`
	Default        bool   `json:"default"`
	ManagementOnly bool   `json:"managementOnly"`
	Namespace      string `json:"namespace"`
	// Problem says what an admin must fix before sessions work (a Primary's topology).
	Problem string       `json:"problem,omitempty"`
	Pod     string       `json:"pod,omitempty"`
	Version version.Info `json:"version"`
}

// infoHandler answers with info; a Primary's topology is checked on each request (any
// replica answers, and only the leader runs informers).
// GetInfo asks the relay of namespace through the API server's service proxy.
func GetInfo(ctx context.Context, kube kubernetes.Interface, namespace string) (Info, error) {
	var info Info
	b, err := kube.CoreV1().Services(namespace).ProxyGet(ProxyScheme, ServiceName, PortName, InfoPath, nil).DoRaw(ctx)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("the relay in %s answered something that is not its description (%v): is kubectl-mirrord's controller of the same version?", namespace, err)
	}
	return info, nil
}
