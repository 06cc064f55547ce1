// Package procfs reads what the agent needs of /proc/PID/stat.
package procfs

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// StatFields are the fields of procRoot/PID/stat after the command name (the state first,
// the start time at index 19); nil when unreadable. The name is skipped by its last ')':
// it may hold spaces and parentheses.
func StatFields(procRoot string, pid int) []string {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}
