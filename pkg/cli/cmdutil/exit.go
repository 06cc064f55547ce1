package cmdutil

import "fmt"

// ExitError carries a local command's exit code out of `kubectl mirrord exec`: main exits
// with it and prints nothing.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }
