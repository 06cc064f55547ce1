package steal

import (
	"fmt"
	"slices"
)

// CheckPorts validates the ports a session asks to steal: each in 1-65535, and none of the
// target's probe ports (liveness, readiness, startup) unless allowed (explicitly, or because
// an HTTP filter passes the probes' requests on): a whole-port steal of those would let the
// local process fail the pod's probes.
func CheckPorts(ports, probePorts []int32, stealProbePorts bool) error {
	for _, p := range ports {
		if p < 1 || p > 65535 {
			return fmt.Errorf("port %d is out of range: ports are 1-65535", p)
		}
		if !stealProbePorts && slices.Contains(probePorts, p) {
			return fmt.Errorf("port %d serves the pod's probes: stealing it would put your session between the kubelet and the pod (a probe failing restarts it); pick the ports with feature.network.incoming.ports, or set stealProbePorts to steal it anyway", p)
		}
	}
	return nil
}
