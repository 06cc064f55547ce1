//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// keptLocal are directories of the developer's machine a remote volume never is: the
// machine's scratch space and its kernel's views.
var keptLocal = []string{"/", "/home", "/root", "/tmp", "/proc", "/sys", "/dev", "/etc", "/var", "/run"}

// systemTrees are where the command's programs and libraries come from: a remote volume is
// never at, in or above one of them (a target could otherwise hand the developer's machine
// its own binaries to run).
var systemTrees = []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr"}

// keptLocalReason says why dir must stay this machine's ("" when a remote volume may cover
// it): one of keptLocal, or at, in or above a protected directory (systemTrees, the user's
// home, the directories on the command's PATH and the command's own).
func keptLocalReason(dir string, protected []string) string {
	dir = filepath.Clean(dir)
	for _, l := range keptLocal {
		if dir == l {
			return "kept local: a volume there would hide this machine's own files"
		}
	}
	for _, p := range protected {
		if p == "" || !filepath.IsAbs(p) {
			continue
		}
		p = filepath.Clean(p)
		if dir == p || strings.HasPrefix(dir, p+"/") || strings.HasPrefix(p, dir+"/") {
			return "kept local: a volume there would cover " + p + ", where the command's programs, libraries or home are"
		}
	}
	return ""
}

// protectedDirs are the directories keptLocalReason protects for a command run with env:
// its programDirs and the user's homes.
func protectedDirs(command, env []string) []string {
	return append(programDirs(command, env), homeDirs(env)...)
}

// programDirs are where a command run with env finds its programs and libraries:
// systemTrees, PATH (as this process and the command see it) and the command's own directory.
func programDirs(command, env []string) []string {
	dirs := append([]string(nil), systemTrees...)
	for _, kv := range [][]string{os.Environ(), env} {
		for _, e := range kv {
			if v, ok := strings.CutPrefix(e, "PATH="); ok {
				dirs = append(dirs, filepath.SplitList(v)...)
			}
		}
	}
	if len(command) > 0 && strings.Contains(command[0], "/") {
		if abs, err := filepath.Abs(command[0]); err == nil {
			dirs = append(dirs, filepath.Dir(abs))
		}
	}
	return dirs
}

// homeDirs are the user's home as this process and a command run with env see it.
func homeDirs(env []string) []string {
	var dirs []string
	for _, kv := range [][]string{os.Environ(), env} {
		for _, e := range kv {
			if v, ok := strings.CutPrefix(e, "HOME="); ok {
				dirs = append(dirs, v)
			}
		}
	}
	return dirs
}

// mappedReason says why a mount of feature.fs.mapping may not be at dir ("" when it may).
// The developer's files under it stay visible (passed through), so unlike a volume it may be
// inside a home; it still never covers one of keptLocal, never is at or above a home, and
// never is at, in or above programs (the command's programs and libraries would go through
// it, and a target could hand them to it).
func mappedReason(dir string, programs, homes []string) string {
	if why := keptLocalReason(dir, programs); why != "" {
		return why
	}
	dir = filepath.Clean(dir)
	for _, h := range homes {
		if h == "" || !filepath.IsAbs(h) {
			continue
		}
		h = filepath.Clean(h)
		if dir == h || strings.HasPrefix(h, dir+"/") {
			return "kept local: a mapping there would cover " + h + ", the user's home: start the pattern with a directory inside it"
		}
	}
	return ""
}

// mounter mounts the target's volumes inside the sandbox's mount namespace.
type mounter struct {
	mounted  []string
	shadowed map[string]bool
	programs []string // programDirs
	homes    []string // homeDirs
}

// mountRemote mounts a FUSE file system at dir and returns its device, for the parent to
// serve. A dir missing here is made in a private copy of its nearest existing parent (see
// shadow), so the developer's disk is never touched.
func (m *mounter) mountRemote(dir string) (int, error) {
	dir = filepath.Clean(dir)
	if why := keptLocalReason(dir, slices.Concat(m.programs, m.homes)); why != "" {
		return -1, errors.New(why)
	}
	return m.mount(dir)
}

// mountMapped mounts a FUSE file system for feature.fs.mapping at dir (as mountRemote does).
func (m *mounter) mountMapped(dir string) (int, error) {
	dir = filepath.Clean(dir)
	if why := mappedReason(dir, m.programs, m.homes); why != "" {
		return -1, errors.New(why)
	}
	for _, p := range m.mounted {
		if strings.HasPrefix(p, dir+"/") {
			return -1, fmt.Errorf("it would hide the target's %s, which is mounted already", p)
		}
	}
	return m.mount(dir)
}

func (m *mounter) mount(dir string) (int, error) {
	for _, p := range m.mounted {
		if dir == p || strings.HasPrefix(dir, p+"/") {
			return -1, fmt.Errorf("inside %s, which is mounted already", p)
		}
	}
	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return -1, errors.New("a file here, a directory in the target")
	case errors.Is(err, os.ErrNotExist):
		if err := m.makeDir(dir); err != nil {
			return -1, err
		}
	case err != nil:
		return -1, err
	}
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR, 0)
	if err != nil {
		return -1, fmt.Errorf("opening /dev/fuse: %w", err)
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)
	if err := unix.Mount("mirrord", dir, "fuse.mirrord", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("mounting FUSE: %w", err)
	}
	m.mounted = append(m.mounted, dir)
	return fd, nil
}

// makeDir creates dir in a private copy of its nearest existing ancestor.
func (m *mounter) makeDir(dir string) error {
	parent := filepath.Dir(dir)
	for {
		if _, err := os.Stat(parent); err == nil {
			break
		}
		parent = filepath.Dir(parent)
	}
	real, err := filepath.EvalSymlinks(parent)
	if err != nil {
		return err
	}
	if real == "/" {
		return errors.New("no such directory here, and / is not shadowed to make one")
	}
	if !m.shadowed[real] {
		if err := shadow(real); err != nil {
			return fmt.Errorf("shadowing %s to make the mount point: %w", real, err)
		}
		m.shadowed[real] = true
	}
	return os.MkdirAll(dir, 0o755)
}

// shadow covers dir with a private tmpfs holding the same entries: directories and files are
// bind mounts of the originals (their own mounts kept), symlinks are copies. New entries, like
// a mount point, then go to the tmpfs, never to the developer's disk. (An overlay would be
// simpler, but the kernel refuses one in a user namespace on a directory with mounts under
// it, as /run usually has.)
func shadow(dir string) error {
	orig, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(orig)
	var st unix.Stat_t
	if err := unix.Fstat(orig, &st); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=16m,mode=%o", st.Mode&0o7777)); err != nil {
		return err
	}
	for _, e := range entries {
		src := fmt.Sprintf("/proc/self/fd/%d/%s", orig, e.Name())
		dst := filepath.Join(dir, e.Name())
		switch {
		case e.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
			continue
		case e.IsDir():
			if err := os.Mkdir(dst, 0o755); err != nil {
				return err
			}
		default:
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			f.Close()
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("keeping %s: %w", dst, err)
		}
	}
	return nil
}
