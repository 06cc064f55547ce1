package manager

import (
	"bufio"
	"bytes"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Gauges the benchmarks and the leader-election test read from /metrics.
var (
	leaderGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kubectl_mirrord_leader",
		Help: "1 while this replica holds the leader Lease and runs the controllers, else 0.",
	})
	// peakRSS is the kernel's high-water mark of the process's resident memory (VmHWM), which
	// a scrape of process_resident_memory_bytes can miss between two samples.
	peakRSS = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kubectl_mirrord_process_peak_resident_memory_bytes",
		Help: "Peak resident memory of this process since it started (VmHWM), in bytes.",
	}, func() float64 { return float64(vmHWM()) })
)

// vmHWM reads VmHWM from /proc/self/status in bytes; 0 where there is no such file.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		f := bytes.Fields(s.Bytes())
		if len(f) >= 2 && string(f[0]) == "VmHWM:" {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}
