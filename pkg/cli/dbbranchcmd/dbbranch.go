// Package dbbranchcmd is `kubectl-mirrord db-branch`, the commands a database branch's pod
// runs (not a user's): install copies this binary into the pod's shared volume, for the
// engine's image to run; serve makes and seeds the branch, then becomes its server.
package dbbranchcmd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/dbbranch"
)

// Paths inside a branch's pod.
const (
	// BinaryDir is the shared volume the install step copies this binary into.
	BinaryDir = "/mirrord-bin"
	// WorkDir is the branch's data volume.
	WorkDir = "/var/lib/mirrord-branch"
)

// NewCmdDBBranch returns the hidden db-branch command.
func NewCmdDBBranch() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "db-branch",
		Short:  "Run a database branch's pod (started by the controller)",
		Hidden: true,
	}
	workDir := WorkDir
	serve := &cobra.Command{
		Use:  "serve",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := dbbranch.ReadBranch(os.Getenv)
			if err == nil {
				l := dbbranch.Layout{Data: filepath.Join(workDir, "data"), Run: filepath.Join(workDir, "run")}
				err = dbbranch.Serve(cmd.Context(), b, l, os.Getenv, func(f string, a ...any) {
					fmt.Fprintf(cmd.ErrOrStderr(), f+"\n", a...)
				})
			}
			// The pod's status carries why the branch failed.
			_ = os.WriteFile("/dev/termination-log", []byte(err.Error()), 0o644)
			return err
		},
	}
	serve.Flags().StringVar(&workDir, "work-dir", WorkDir, "the branch's data volume")
	cmd.AddCommand(&cobra.Command{
		Use:  "install DIR",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return install(args[0]) },
	}, serve)
	return cmd
}

// install copies this executable into dir, for a container of another image to run.
func install(dir string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(filepath.Join(dir, "kubectl-mirrord"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
