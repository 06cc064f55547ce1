// Command image builds the kubectl-mirrord container image as a tarball, without Docker:
// the static binary (controller, agent and plugin in one) plus what the agent needs at
// run time on nodes whose kernel lacks nftables owner flags: iptables (nft and legacy
// backends) with its libraries and extensions.
//
//	go run ./hack/image -binary bin/linux_amd64/kubectl-mirrord -ref mirrord.local/kubectl-mirrord:dev -o bin/images/kubectl-mirrord.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/ociimage"
)

func main() {
	binary := flag.String("binary", "", "linux kubectl-mirrord binary")
	ref := flag.String("ref", "mirrord.local/kubectl-mirrord:dev", "image reference")
	out := flag.String("o", "", "output tarball")
	flag.Parse()
	if *binary == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: image -binary FILE -o TAR [-ref REF]")
		os.Exit(2)
	}
	spec := ociimage.Spec{
		Ref:        *ref,
		Files:      map[string]string{"/usr/local/bin/kubectl-mirrord": *binary},
		Entrypoint: []string{"/usr/local/bin/kubectl-mirrord"},
		Symlinks:   map[string]string{},
	}
	// iptables: the multi-call binaries, their libraries, their extensions and the
	// names go-iptables calls them by.
	spec.WithLibs = append(spec.WithLibs, "/usr/sbin/xtables-nft-multi", "/usr/sbin/xtables-legacy-multi")
	if ext, err := filepath.Glob("/usr/lib/*-linux-gnu/xtables"); err == nil && len(ext) == 1 {
		spec.Dirs = append(spec.Dirs, ext[0])
	} else {
		fmt.Fprintln(os.Stderr, "image: iptables extensions not found: install the iptables package (apt-get install iptables)")
		os.Exit(1)
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
	if err := ociimage.Write(spec, *out); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Println(*out)
}
