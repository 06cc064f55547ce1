package stateful

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
)

// runtimeMounts are mount points every container has that are not the workload's volumes:
// the kernel's file systems and the files the runtime writes for the pod.
var runtimeMounts = []string{"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev/termination-log"}

// Mount is one volume mounted in the target container.
type Mount struct {
	Path string
	// Dir is false for a single file mounted with subPath.
	Dir bool
}

// Mounts lists the target container's volume mounts (ConfigMaps, Secrets, the
// service-account token, emptyDirs, PVCs) from /proc/PID/mountinfo: every mount point but the
// root, /proc, /sys, /dev and the files the runtime writes.
func Mounts(procRoot string, pid int, fsys *FS) ([]Mount, error) {
	f, err := os.Open(path.Join(procRoot, strconv.Itoa(pid), "mountinfo"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Mount
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMountinfo(fields[4])
		if !isVolume(p) || seen[p] {
			continue
		}
		seen[p] = true
		m := Mount{Path: p}
		if fsys != nil {
			st, err := fsys.Stat(p)
			if err != nil {
				continue // kept local or hidden by feature.fs: not the session's to show
			}
			m.Dir = st.Mode&0o170000 == 0o040000
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func isVolume(p string) bool {
	if p == "/" || !strings.HasPrefix(p, "/") {
		return false
	}
	for _, pre := range []string{"/proc", "/sys", "/dev"} {
		if p == pre || strings.HasPrefix(p, pre+"/") {
			return false
		}
	}
	for _, r := range runtimeMounts {
		if p == r {
			return false
		}
	}
	return true
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
