// Package owner tells whether a local TCP port is listened on by a given process tree: in
// proxy mode the command shares this machine's loopback with every other program, and the
// target's incoming traffic may only be delivered to the command's own ports, never to
// another program's (an SSH server, a database) whatever port an upstream names.
package owner

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// listeningInodes reads a /proc/net/tcp{,6} table and returns the socket inodes listening
// (state 0A) on port, any address.
func listeningInodes(table io.Reader, port uint16) []string {
	var inodes []string
	s := bufio.NewScanner(table)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && uint16(p) == port {
			inodes = append(inodes, f[9])
		}
	}
	return inodes
}

// inTree says whether pid is root or one of its descendants, by parents (pid -> ppid).
func inTree(pid, root int, parents map[int]int) bool {
	for range 1024 { // a cycle cannot happen in a consistent table; a torn read must not loop
		if pid == root {
			return true
		}
		ppid, ok := parents[pid]
		if !ok || ppid == 0 || ppid == pid {
			return false
		}
		pid = ppid
	}
	return false
}

// Checker answers Owns for one process tree, remembering a port it owns for a while: a
// stolen connection per request must not scan /proc each time.
type Checker struct {
	mu     sync.Mutex
	root   int
	owned  map[uint16]time.Time // ports found the tree's, and when
	lookup func(port uint16, root int) (bool, error)
}

// cacheFor is how long a port's answer holds.
const cacheFor = 2 * time.Second

// SetRoot names the process tree (its first process) once it runs.
func (c *Checker) SetRoot(pid int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.root, c.owned = pid, map[uint16]time.Time{}
}

// Owns says whether the tree listens on port. Before SetRoot, nothing is owned.
func (c *Checker) Owns(port uint16) (bool, error) {
	c.mu.Lock()
	root := c.root
	if at, ok := c.owned[port]; ok && time.Since(at) < cacheFor {
		c.mu.Unlock()
		return true, nil
	}
	c.mu.Unlock()
	if root == 0 {
		return false, nil
	}
	lookup := c.lookup
	if lookup == nil {
		lookup = listenedBy
	}
	owned, err := lookup(port, root)
	if err != nil {
		return false, err
	}
	// Only a yes is remembered: a port the command is about to listen on must be its own as
	// soon as it does.
	if owned {
		c.mu.Lock()
		if c.root == root {
			c.owned[port] = time.Now()
		}
		c.mu.Unlock()
	}
	return owned, nil
}
