// Package bench holds `make bench`: benchmarks on the local clusters and in network
// namespaces. Each writes its rows with record; hack/bench.sh prints them as one table.
package bench
