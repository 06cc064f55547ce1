//go:build !linux

package cli

import "github.com/spf13/cobra"

// platformCommands: the agent exists in the Linux build only (it runs in the cluster).
func platformCommands() []*cobra.Command { return nil }
