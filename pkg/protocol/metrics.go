package protocol

import "github.com/prometheus/client_golang/prometheus"

// LimitCollectors count the hits of every limit in this process, as
// kubectl_mirrord_limit_hits_total{limit="NAME"} (the controller's metrics and the agent's).
func LimitCollectors() []prometheus.Collector {
	var cs []prometheus.Collector
	for _, name := range LimitNames {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "kubectl_mirrord_limit_hits_total",
			Help:        "Operations refused because a peer reached one of the named limits (pkg/protocol/limits.go).",
			ConstLabels: prometheus.Labels{"limit": string(name)},
		}, func() float64 { return float64(LimitHits(name)) }))
	}
	return cs
}
