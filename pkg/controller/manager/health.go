package manager

import (
	"fmt"
	"net/http"
)

// health serves /healthz and /readyz. Both say the process serves: a standby replica is
// ready too (it serves the relay), and so is a Primary whose topology is not valid yet — an
// admin installs the Primary first and registers members after, and `kubectl mirrord status`
// (through the relay) and every session's condition say what to fix.
type health struct{}

func (h *health) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	m.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return m
}
