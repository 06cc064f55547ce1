// Package imagespec says what the kubectl-mirrord image holds: the static binary (controller,
// agent and plugin in one) and what the agent needs at run time on nodes whose kernel lacks
// nftables owner flags: iptables (nft and legacy backends) with its libraries, extensions and
// the names go-iptables calls it by. hack/image builds it for this machine, hack/release for
// every released architecture.
package imagespec

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/ociimage"
)

// IptablesPackages are the Debian packages (for one architecture) that make a working
// iptables, with every library it loads.
var IptablesPackages = []string{"iptables", "libxtables12", "libip4tc2", "libip6tc2", "libnftnl11", "libmnl0",
	"libnetfilter-conntrack3", "libnfnetlink0", "libc6"}

// KubectlMirrord is the image of binary (ref names it). With debianRoot empty, iptables comes
// from this machine (with the libraries ldd finds); otherwise from IptablesPackages unpacked
// into debianRoot, for another architecture.
func KubectlMirrord(ref, binary, debianRoot string) (ociimage.Spec, error) {
	spec := ociimage.Spec{
		Ref:        ref,
		Files:      map[string]string{"/usr/local/bin/kubectl-mirrord": binary},
		Entrypoint: []string{"/usr/local/bin/kubectl-mirrord"},
		Symlinks:   map[string]string{},
	}
	libRoot := "/"
	if debianRoot == "" {
		spec.WithLibs = append(spec.WithLibs, "/usr/sbin/xtables-nft-multi", "/usr/sbin/xtables-legacy-multi")
	} else {
		spec.Roots = append(spec.Roots, debianRoot)
		libRoot = debianRoot
	}
	ext, err := filepath.Glob(filepath.Join(libRoot, "usr/lib/*-linux-gnu/xtables"))
	if err != nil || len(ext) != 1 {
		return spec, fmt.Errorf("iptables extensions not found under %s: install the iptables package (apt-get install iptables)", libRoot)
	}
	if debianRoot == "" {
		spec.Dirs = append(spec.Dirs, ext[0])
	}
	for _, cmd := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
		spec.Symlinks["/usr/sbin/"+cmd] = "xtables-nft-multi"
		nft := strings.Replace(cmd, "tables", "tables-nft", 1)
		spec.Symlinks["/usr/sbin/"+nft] = "xtables-nft-multi"
		legacy := strings.Replace(cmd, "tables", "tables-legacy", 1)
		spec.Symlinks["/usr/sbin/"+legacy] = "xtables-legacy-multi"
	}
	spec.Files["/etc/protocols"] = "/etc/protocols"
	spec.Files["/etc/services"] = "/etc/services"
	return spec, nil
}
