//go:build !linux

package sandbox

import (
	"errors"
	"runtime"
)

// Supported: the namespaces exist on Linux only.
func Supported() error {
	return errors.New("the command's own namespaces need Linux; this is " + runtime.GOOS)
}

// Init is never reached: nothing starts a sandbox here.
func Init() { panic("sandbox: not on " + runtime.GOOS) }
