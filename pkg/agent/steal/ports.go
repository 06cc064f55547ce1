package steal

import (
	"fmt"
	"slices"
)

// CheckPorts validates the ports a session asks to steal: each in 1-65535, and none of the
// target's probe ports (liveness, readiness, startup) unless the session explicitly allows
// it: stealing those would let the local process fail the pod's probes.
func CheckPorts(ports, probePorts []int32, stealProbePorts bool) error {
	for _, p := range ports {
		if p < 1 || p > 65535 {
			return fmt.Errorf("port %d is out of range: ports are 1-65535", p)
		}
		if !stealProbePorts && slices.Contains(probePorts, p) {
			return fmt.Errorf("port %d serves the pod's probes: stealing it would make the kubelet probe your local process; steal another port, filter by HTTP, or set feature.network.incoming.stealProbePorts", p)
		}
	}
	return nil
}
