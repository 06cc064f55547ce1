package relayserver

import (
	"encoding/json"
	"net/http"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/relay"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/roles"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/version"
)

func infoOf(r roles.Roles, namespace string) relay.Info {
	return relay.Info{ClusterName: r.ClusterName, Roles: r.String(), Primary: r.Primary, Workload: r.Workload,
		Default: r.Default, ManagementOnly: r.ManagementOnly, Namespace: namespace,
		Pod: os.Getenv("POD_NAME"), Version: version.Get()}
}

func (s *Server) infoHandler(info relay.Info) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := info
		if s.Roles.Primary {
			members, err := s.Mirrord.MirrordV1alpha1().MirrordClusters().List(r.Context(), metav1.ListOptions{})
			if err != nil {
				out.Problem = "cannot list MirrordClusters: " + err.Error()
			} else {
				ptrs := make([]*mirrordv1alpha1.MirrordCluster, len(members.Items))
				for i := range members.Items {
					ptrs[i] = &members.Items[i]
				}
				if err := roles.ValidateTopology(s.Roles, ptrs); err != nil {
					out.Problem = err.Error()
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}
