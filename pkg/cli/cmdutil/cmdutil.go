// Package cmdutil holds what every kubectl-mirrord command shares.
package cmdutil

import (
	"errors"
	"fmt"
)

// ErrNotAvailable is returned by commands whose flags exist but whose behaviour is not
// built yet, so scripts and users get a clear, stable failure instead of a silent no-op.
var ErrNotAvailable = errors.New("not available yet in this version of kubectl-mirrord")

// NotAvailable returns an error for a command that is not available yet.
func NotAvailable(command string) error {
	return fmt.Errorf("kubectl mirrord %s: %w; see `kubectl mirrord version` and the README's status section", command, ErrNotAvailable)
}
