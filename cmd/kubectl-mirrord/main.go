// Command kubectl-mirrord is the kubectl plugin, and, in the cluster, the controller and
// the agent: one static binary, one image.
package main

import (
	"errors"
	"fmt"
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	// client-go's credential plugins (OIDC; exec is built in), as kubectl links them.
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/sessionflags"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/sandbox"
)

func main() {
	// The sandbox's first process is this binary too: it sets up the namespaces and then
	// becomes the developer's command.
	if len(os.Args) > 1 && os.Args[1] == sandbox.InitArg {
		sandbox.Init()
	}
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	root := cli.NewRootCmd(streams)
	root.SetArgs(sessionflags.DefaultMissingConfigFile(os.Args[1:]))
	if err := root.Execute(); err != nil {
		var exit *cmdutil.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.Code)
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
