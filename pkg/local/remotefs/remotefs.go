// Package remotefs serves a directory of the target container as a FUSE file system, every
// operation answered through the session by the Default cluster's agent. The sandbox mounts
// one per volume of the target (ConfigMaps, Secrets, the service-account token, ...) inside
// the command's mount namespace; nothing is mounted on the developer's machine.
package remotefs

import (
	"context"
	"errors"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"strconv"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// Remote is what the file system needs of a session.
type Remote interface {
	Do(protocol.Request) (protocol.Response, error)
	Open(path string, flags int, mode uint32) (*protocol.File, error)
}

// attrTimeout is how long the kernel caches attributes and names. Remote volumes change
// rarely (a ConfigMap update takes the kubelet a minute), so one second trades little
// freshness for far fewer round trips.
const attrTimeout = time.Second

// Serve serves remote directory dir on the FUSE device (from the sandbox's mount(2)), and
// returns once the kernel has spoken to it. writable allows writes (feature.fs mode write;
// the agent still decides per path). The server uses its own copy of the descriptor, so the
// caller closes device when it likes; the server stops when the mount goes away.
func Serve(device *os.File, r Remote, dir string, writable bool) (*fuse.Server, error) {
	return serve(device, &node{r: r, path: dir, writable: writable}, "mirrord:"+dir)
}

// serve serves the file system under root on device.
func serve(device *os.File, root fs.InodeEmbedder, name string) (*fuse.Server, error) {
	fd, err := unix.Dup(int(device.Fd()))
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(fd)
	timeout := attrTimeout
	opts := &fs.Options{
		EntryTimeout: &timeout, AttrTimeout: &timeout, NegativeTimeout: &timeout,
		MountOptions: fuse.MountOptions{FsName: name, Name: "mirrord", MaxWrite: protocol.MaxRead / 4},
	}
	srv, err := fuse.NewServer(fs.NewNodeFS(root, opts), devFD(fd), &opts.MountOptions)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	go srv.Serve()
	return srv, srv.WaitMount()
}

// devFD is go-fuse's way of saying "already mounted; here is the device".
func devFD(fd int) string { return "/dev/fd/" + strconv.Itoa(fd) }

type node struct {
	fs.Inode
	r        Remote
	path     string
	writable bool
}

var (
	_ fs.NodeLookuper   = (*node)(nil)
	_ fs.NodeGetattrer  = (*node)(nil)
	_ fs.NodeReaddirer  = (*node)(nil)
	_ fs.NodeReadlinker = (*node)(nil)
	_ fs.NodeOpener     = (*node)(nil)
	_ fs.NodeStatfser   = (*node)(nil)
)

// errno is the errno the agent gave, or EIO.
func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var re *protocol.RemoteError
	if errors.As(err, &re) && re.Errno != 0 {
		if re.Errno == syscall.EXDEV { // feature.fs keeps the path local: not in the volume
			return syscall.ENOENT
		}
		return re.Errno
	}
	return syscall.EIO
}

func (n *node) stat(p string) (*protocol.Stat, syscall.Errno) {
	resp, err := n.r.Do(protocol.Request{Op: protocol.OpStat, Path: p})
	if err != nil {
		return nil, errno(err)
	}
	if resp.Stat == nil {
		return nil, syscall.EIO
	}
	return resp.Stat, 0
}

func fill(a *fuse.Attr, s *protocol.Stat) {
	a.Mode, a.Size, a.Ino, a.Nlink = s.Mode, uint64(s.Size), s.Ino, uint32(s.Nlink)
	a.Blocks = (a.Size + 511) / 512
	// The command runs as root in its user namespace; show the files as its own, so modes
	// like 0400 of a Secret still let it read them, as the pod's process does.
	a.Owner = fuse.Owner{Uid: 0, Gid: 0}
	a.SetTimes(timeOf(s.Atime), timeOf(s.Mtime), timeOf(s.Ctime))
}

func timeOf(ns int64) *time.Time { t := time.Unix(0, ns); return &t }

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	p := path.Join(n.path, name)
	s, e := n.stat(p)
	if e != 0 {
		return nil, e
	}
	fill(&out.Attr, s)
	child := &node{r: n.r, path: p, writable: n.writable}
	return n.NewInode(ctx, child, fs.StableAttr{Mode: s.Mode & syscall.S_IFMT}), 0
}

func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	s, e := n.stat(n.path)
	if e != 0 {
		return e
	}
	fill(&out.Attr, s)
	return 0
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	resp, err := n.r.Do(protocol.Request{Op: protocol.OpReadDir, Path: n.path})
	if err != nil {
		return nil, errno(err)
	}
	entries := make([]fuse.DirEntry, 0, len(resp.Entries))
	for _, e := range resp.Entries {
		entries = append(entries, fuse.DirEntry{Name: e.Name, Mode: modeBits(e.Type)})
	}
	return fs.NewListDirStream(entries), 0
}

// modeBits turns io/fs type bits into st_mode type bits.
func modeBits(t iofs.FileMode) uint32 {
	switch {
	case t.IsDir():
		return syscall.S_IFDIR
	case t&iofs.ModeSymlink != 0:
		return syscall.S_IFLNK
	case t&iofs.ModeNamedPipe != 0:
		return syscall.S_IFIFO
	case t&iofs.ModeSocket != 0:
		return syscall.S_IFSOCK
	case t&iofs.ModeCharDevice != 0:
		return syscall.S_IFCHR
	case t&iofs.ModeDevice != 0:
		return syscall.S_IFBLK
	}
	return syscall.S_IFREG
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	resp, err := n.r.Do(protocol.Request{Op: protocol.OpReadlink, Path: n.path})
	if err != nil {
		return nil, errno(err)
	}
	return []byte(resp.Link), 0
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.NameLen, out.Bsize, out.Frsize = 255, 4096, 4096
	return 0
}

const writeFlags = syscall.O_WRONLY | syscall.O_RDWR | syscall.O_TRUNC | syscall.O_APPEND | syscall.O_CREAT

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&writeFlags != 0 && !n.writable {
		return nil, 0, syscall.EROFS
	}
	f, err := n.r.Open(n.path, int(flags)&^syscall.O_CREAT, 0)
	if err != nil {
		return nil, 0, errno(err)
	}
	return &handle{f: f}, 0, 0
}

type handle struct{ f *protocol.File }

var (
	_ fs.FileReader   = (*handle)(nil)
	_ fs.FileWriter   = (*handle)(nil)
	_ fs.FileReleaser = (*handle)(nil)
)

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := h.f.ReadAt(dest, off)
	if err != nil && n == 0 && !errors.Is(err, io.EOF) {
		return nil, errno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n, err := h.f.WriteAt(data, off)
	if err != nil {
		return uint32(n), errno(err)
	}
	return uint32(n), 0
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	_ = h.f.Close()
	return 0
}
