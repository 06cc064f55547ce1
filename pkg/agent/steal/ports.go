package steal

import "fmt"

// CheckPorts validates the ports a session asks to steal: each in 1-65535. The ports the
// kubelet probes may be stolen: the agent leaves the node's connections to the target
// (Stealer.StealExcept) unless the session steals the probes too.
func CheckPorts(ports []int32) error {
	for _, p := range ports {
		if p < 1 || p > 65535 {
			return fmt.Errorf("port %d is out of range: ports are 1-65535", p)
		}
	}
	return nil
}
