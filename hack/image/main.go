// Command image builds the kubectl-mirrord container image for this machine as a tarball,
// without Docker (what it holds: hack/imagespec).
//
//	go run ./hack/image -binary bin/linux_amd64/kubectl-mirrord -ref mirrord.local/kubectl-mirrord:dev -o bin/images/kubectl-mirrord.tar
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kubectl-mirrord/kubectl-mirrord/hack/imagespec"
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
	spec, err := imagespec.KubectlMirrord(*ref, *binary, "")
	if err == nil {
		err = ociimage.Write(spec, *out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Println(*out)
}
