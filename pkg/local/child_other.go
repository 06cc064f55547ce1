//go:build !linux

package local

import "syscall"

// childAttr: without a parent-death signal, the command outlives a kill -9 of this process.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
