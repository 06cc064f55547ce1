// Command coredns is CoreDNS with only the plugins a rig cluster's DNS needs. It keeps the
// build small and fast; the Corefile the rig deploys uses nothing else, and has no forward
// plugin on purpose: the rig's DNS never sends queries off the machine.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// directives is the plugin order; it must list every plugin imported above.
var directives = []string{"reload", "health", "ready", "errors", "log", "loadbalance", "cache", "loop", "kubernetes"}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
