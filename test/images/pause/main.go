// Command pause is the rig's pod sandbox program: it holds the pod's namespaces, reaps
// orphaned children (it is PID 1 of the pod when the PID namespace is shared) and exits on
// SIGTERM or SIGINT. No registry is reachable here, so the rig builds its own.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
