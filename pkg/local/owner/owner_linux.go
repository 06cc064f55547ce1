package owner

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// listenedBy says whether a process of the tree rooted at root has a socket listening on
// port: the listening sockets' inodes from /proc/net/tcp{,6}, then the tree's descriptors.
func listenedBy(port uint16, root int) (bool, error) {
	want := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		for _, ino := range listeningInodes(f, port) {
			want["socket:["+ino+"]"] = true
		}
		f.Close()
	}
	if len(want) == 0 {
		return false, nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false, err
	}
	parents := map[int]int{}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The fields after the command name, which may hold spaces and parentheses.
		i := strings.LastIndexByte(string(b), ')')
		if f := strings.Fields(string(b[i+1:])); i >= 0 && len(f) > 1 {
			parents[pid], _ = strconv.Atoi(f[1])
		}
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		if !inTree(pid, root, parents) {
			continue
		}
		dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && want[link] {
				return true, nil
			}
		}
	}
	return false, nil
}
