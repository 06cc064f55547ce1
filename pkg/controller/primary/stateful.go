package primary

import (
	"fmt"
	"strings"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// statefulWanted lists what of the session's features only the Default cluster answers
// (mirrord's "stateful operations"), each with the flag that turns it off.
func statefulWanted(f mirrordv1alpha1.Features) (what, flags []string) {
	add := func(w, flag string) {
		what, flags = append(what, w), append(flags, flag)
	}
	if !f.Env.Disabled {
		add("environment", "--no-env")
	}
	if f.FS.ReadsRemotely() {
		add("files", "--fs-mode local")
	}
	if !f.Network.DNS.Disabled {
		add("DNS", "--no-dns")
	}
	out := f.Network.Outgoing
	if out.TCP == nil || *out.TCP || out.UDP == nil || *out.UDP {
		add("outgoing traffic", "--no-outgoing")
	}
	return what, flags
}

// notInDefault is why a session whose target the Default cluster lacks cannot run, or "" if
// it asks only for the target's traffic (which every workload cluster that has it serves).
func notInDefault(target, defaultCluster string, found int, f mirrordv1alpha1.Features) string {
	what, flags := statefulWanted(f)
	if len(what) == 0 {
		return ""
	}
	return fmt.Sprintf("%s is not in the Default cluster %s (found in %d other cluster(s)), which alone answers for its %s: "+
		"deploy it there, or take only its traffic (%s)", target, defaultCluster, found, strings.Join(what, ", "), strings.Join(flags, " "))
}
