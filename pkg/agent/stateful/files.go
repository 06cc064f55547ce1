package stateful

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// Access is what a session may do with one path of the target.
type Access int

const (
	// AccessLocal paths are not served by the agent: the developer's machine answers.
	AccessLocal Access = iota
	// AccessRead paths are read from the target.
	AccessRead
	// AccessWrite paths are read and written in the target.
	AccessWrite
	// AccessNotFound paths look absent.
	AccessNotFound
)

// ErrLocal is returned for paths the session serves locally.
var ErrLocal = errors.New("this path is served by the developer's machine (feature.fs)")

// FS serves a target container's files. Every path is resolved inside the container's root,
// symlinks included (openat2 RESOLVE_IN_ROOT), so no path escapes to the node.
type FS struct {
	root                           *os.File
	readOnly, readWrite, local, nf []*regexp.Regexp
	// Policies' rules, which the session's own settings cannot widen.
	policyReadOnly, policyLocal []*regexp.Regexp
	mode                        mirrordv1alpha1.FSMode
}

func newFS(f mirrordv1alpha1.FSFeature) (*FS, error) {
	fsys := &FS{mode: f.Mode}
	if fsys.mode == "" {
		fsys.mode = mirrordv1alpha1.FSModeRead
	}
	switch fsys.mode {
	case mirrordv1alpha1.FSModeLocal, mirrordv1alpha1.FSModeRead, mirrordv1alpha1.FSModeWrite:
	default:
		return nil, fmt.Errorf("feature.fs.mode %q: want local, read or write", f.Mode)
	}
	var err error
	for _, l := range []struct {
		key  string
		in   []string
		into *[]*regexp.Regexp
	}{{"readOnly", f.ReadOnly, &fsys.readOnly}, {"readWrite", f.ReadWrite, &fsys.readWrite}, {"local", f.Local, &fsys.local}, {"notFound", f.NotFound, &fsys.nf},
		{"policyReadOnly", f.PolicyReadOnly, &fsys.policyReadOnly}, {"policyLocal", f.PolicyLocal, &fsys.policyLocal}} {
		if *l.into, err = agentconfig.CompileAll("feature.fs."+l.key, l.in); err != nil {
			return nil, err
		}
	}
	return fsys, nil
}

// OpenFS opens the root of process pid's container (/proc/PID/root) with the session's fs
// feature; a bad regular expression is an error naming it.
func OpenFS(procRoot string, pid int, f mirrordv1alpha1.FSFeature) (*FS, error) {
	fsys, err := newFS(f)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenFile(path.Join(procRoot, strconv.Itoa(pid), "root"), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the target's root file system: %w", err)
	}
	fsys.root = root
	return fsys, nil
}

// Close releases the container's root.
func (f *FS) Close() error { return f.root.Close() }

// Access says what the session may do with path (absolute). Policies come first and only
// narrow: notFound, a policy's local, then the session's overrides in the order mirrord
// documents (readWrite, readOnly, local, then the mode), and a policy's readOnly takes
// writing away from whatever those allowed.
func (f *FS) Access(p string) Access {
	switch {
	case matchRE(f.nf, p):
		return AccessNotFound
	case matchRE(f.policyLocal, p):
		return AccessLocal
	}
	a := f.sessionAccess(p)
	if a == AccessWrite && matchRE(f.policyReadOnly, p) {
		a = AccessRead
	}
	return a
}

// sessionAccess is what the session's own settings allow for p.
func (f *FS) sessionAccess(p string) Access {
	switch {
	case matchRE(f.readWrite, p):
		return AccessWrite
	case matchRE(f.readOnly, p):
		return AccessRead
	case matchRE(f.local, p):
		return AccessLocal
	}
	switch f.mode {
	case mirrordv1alpha1.FSModeWrite:
		return AccessWrite
	case mirrordv1alpha1.FSModeRead:
		return AccessRead
	}
	return AccessLocal
}

func matchRE(res []*regexp.Regexp, p string) bool {
	for _, re := range res {
		if re.MatchString(p) {
			return true
		}
	}
	return false
}

// narrowest is the more restrictive of two accesses: absent, then local, read, write.
func narrowest(a, b Access) Access {
	rank := func(x Access) int {
		switch x {
		case AccessNotFound:
			return 0
		case AccessLocal:
			return 1
		case AccessRead:
			return 2
		}
		return 3
	}
	if rank(b) < rank(a) {
		return b
	}
	return a
}

// maxSymlinks bounds the symlinks one path may go through, as the kernel's MAXSYMLINKS.
const maxSymlinks = 40

// resolve returns p with every symlink resolved inside the container's root, as the kernel
// resolves it there (RESOLVE_IN_ROOT: ".." and absolute links stop at the root). A component
// that does not exist ends the walk: the rest is kept as written.
func (f *FS) resolve(p string) (string, error) {
	resolved := "/"
	rest := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	for links := 0; len(rest) > 0; {
		comp := rest[0]
		rest = rest[1:]
		switch comp {
		case "", ".":
			continue
		case "..":
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, comp)
		how := unix.OpenHow{Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS}
		fd, err := unix.Openat2(int(f.root.Fd()), next, &how)
		if err != nil {
			// Absent (or not reachable): nothing further to resolve.
			return path.Join(append([]string{next}, rest...)...), nil
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			buf := make([]byte, unix.PathMax)
			var n int
			if n, err = unix.Readlinkat(fd, "", buf); err == nil {
				if links++; links > maxSymlinks {
					_ = unix.Close(fd)
					return "", unix.ELOOP
				}
				target := string(buf[:n])
				if path.IsAbs(target) {
					resolved = "/"
				}
				rest = append(strings.Split(strings.TrimPrefix(target, "/"), "/"), rest...)
				_ = unix.Close(fd)
				continue
			}
		}
		_ = unix.Close(fd)
		if err != nil {
			return "", err
		}
		resolved = next
	}
	return resolved, nil
}

// access is what the session may do with p: the rules are applied to p as asked and to p
// with its symlinks resolved inside the container, and the narrower answer holds, so a rule
// on /run/secrets also covers /var/run/secrets when /var/run links to /run, and a rule on a
// projected volume's file covers the ..data/ link it goes through.
func (f *FS) access(p string) (Access, error) {
	a := f.Access(p)
	if a == AccessNotFound {
		return a, nil
	}
	resolved, err := f.resolve(p)
	if err != nil {
		return a, err
	}
	if resolved != p {
		a = narrowest(a, f.Access(resolved))
	}
	return a, nil
}

// check cleans p and enforces the session's access for an operation that writes or not.
func (f *FS) check(p string, write bool) (string, error) {
	if !path.IsAbs(p) {
		return "", &fs.PathError{Op: "open", Path: p, Err: errors.New("path must be absolute")}
	}
	p = path.Clean(p)
	access, err := f.access(p)
	if err != nil {
		return "", &fs.PathError{Op: "open", Path: p, Err: err}
	}
	switch access {
	case AccessNotFound:
		return "", &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	case AccessLocal:
		return "", &fs.PathError{Op: "open", Path: p, Err: ErrLocal}
	case AccessRead:
		if write {
			return "", &fs.PathError{Op: "open", Path: p, Err: fmt.Errorf("%w: read-only for this session (feature.fs mode or policy)", fs.ErrPermission)}
		}
	}
	return p, nil
}

// Open opens p in the target's container with open(2) flags; writing flags need write access.
func (f *FS) Open(p string, flags int, perm uint32) (*os.File, error) {
	write := flags&(unix.O_WRONLY|unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_APPEND) != 0
	p, err := f.check(p, write)
	if err != nil {
		return nil, err
	}
	// The agent creates as root: a setuid or setgid bit would hand the session's file the
	// target's root, or a group it does not have.
	perm &^= unix.S_ISUID | unix.S_ISGID
	return f.openat2(p, uint64(flags), uint64(perm), 0)
}

func (f *FS) openat2(p string, flags, mode, resolve uint64) (*os.File, error) {
	how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Mode: mode, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | resolve}
	fd, err := unix.Openat2(int(f.root.Fd()), p, &how)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	if err := containerFile(fd, flags&unix.O_PATH != 0); err != nil {
		_ = unix.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// kernelFS are file systems that are the kernel's views, not the container's files: through
// them a session would read around its env excludes (/proc/1/environ), another process's
// memory (/proc/N/mem), or the node's devices and settings. They are refused wherever the
// path leads, symlinks included (the check is on what was opened).
var kernelFS = map[int64]string{
	unix.PROC_SUPER_MAGIC: "procfs", unix.SYSFS_MAGIC: "sysfs", unix.DEVPTS_SUPER_MAGIC: "devpts",
	unix.CGROUP_SUPER_MAGIC: "cgroupfs", unix.CGROUP2_SUPER_MAGIC: "cgroup2", unix.SECURITYFS_MAGIC: "securityfs",
	unix.DEBUGFS_MAGIC: "debugfs", unix.TRACEFS_MAGIC: "tracefs", unix.BPF_FS_MAGIC: "bpffs", unix.NSFS_MAGIC: "nsfs",
	unix.PSTOREFS_MAGIC: "pstore", unix.EFIVARFS_MAGIC: "efivarfs", unix.SELINUX_MAGIC: "selinuxfs", unix.BINFMTFS_MAGIC: "binfmt_misc",
}

// ErrKernelFile is the reason a path that leads to a kernel file system or a device is refused.
var ErrKernelFile = errors.New("not one of the container's files (a kernel file system or a device): refused")

// containerFile refuses fd when it is on a kernel file system, or a device node unless only
// its metadata is wanted (pathOnly: stat, readlink).
func containerFile(fd int, pathOnly bool) error {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return err
	}
	if name, ok := kernelFS[int64(sfs.Type)]; ok {
		return fmt.Errorf("%w (%s)", ErrKernelFile, name)
	}
	if pathOnly {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if t := st.Mode & unix.S_IFMT; t == unix.S_IFCHR || t == unix.S_IFBLK {
		return fmt.Errorf("%w (a device)", ErrKernelFile)
	}
	return nil
}

// Stat is lstat(2) of p in the container (a final symlink is not followed).
func (f *FS) Stat(p string) (unix.Stat_t, error) {
	var st unix.Stat_t
	p, err := f.check(p, false)
	if err != nil {
		return st, err
	}
	file, err := f.openat2(p, unix.O_PATH|unix.O_NOFOLLOW, 0, 0)
	if err != nil {
		return st, err
	}
	defer file.Close()
	if err := unix.Fstatat(int(file.Fd()), "", &st, unix.AT_EMPTY_PATH); err != nil {
		return st, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	return st, nil
}

// ReadDir lists directory p of the container.
func (f *FS) ReadDir(p string) ([]fs.DirEntry, error) {
	p, err := f.check(p, false)
	if err != nil {
		return nil, err
	}
	dir, err := f.openat2(p, unix.O_RDONLY|unix.O_DIRECTORY, 0, 0)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return dir.ReadDir(-1)
}

// Readlink returns the text of symlink p in the container.
func (f *FS) Readlink(p string) (string, error) {
	p, err := f.check(p, false)
	if err != nil {
		return "", err
	}
	file, err := f.openat2(p, unix.O_PATH|unix.O_NOFOLLOW, 0, 0)
	if err != nil {
		return "", err
	}
	defer file.Close()
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(int(file.Fd()), "", buf)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: p, Err: err}
	}
	return string(buf[:n]), nil
}

// ReadFile reads all of p.
func (f *FS) ReadFile(p string) ([]byte, error) {
	file, err := f.Open(p, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return io.ReadAll(file)
}
