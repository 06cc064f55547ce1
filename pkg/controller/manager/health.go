package manager

import (
	"fmt"
	"net/http"
	"sync"
)

// health serves /healthz (the process runs) and /readyz (this replica's controllers run and
// the topology is valid; a standby replica is ready too, so rollouts proceed).
type health struct {
	mu      sync.Mutex
	check   func() error
	leading bool
}

func (h *health) setCheck(f func() error) { h.mu.Lock(); h.check = f; h.mu.Unlock() }
func (h *health) setLeading(b bool)       { h.mu.Lock(); h.leading = b; h.mu.Unlock() }

func (h *health) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	m.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		h.mu.Lock()
		check, leading := h.check, h.leading
		h.mu.Unlock()
		if leading && check != nil {
			if err := check(); err != nil {
				http.Error(w, "invalid cluster roles: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	return m
}
