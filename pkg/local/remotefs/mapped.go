package remotefs

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/fsmap"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// ServeMapped serves the mount at local directory dir of feature.fs.mapping: each path under
// it that the mapping maps is the target's file at the mapped path (its whole tree then is
// the target's), and every other path is the developer's own file, passed through. The
// server runs in this process, outside the sandbox's mount namespace, so it sees dir as the
// developer's machine has it.
func ServeMapped(device *os.File, r Remote, dir string, m *fsmap.Mapping, writable bool) (*fuse.Server, error) {
	mf := mapped{m: m, r: r, writable: writable}
	var root fs.InodeEmbedder
	if remote, ok := m.Map(dir); ok {
		if resolved, _, e := followRemote(r, remote); e == 0 {
			remote = resolved
		}
		root = &node{r: r, path: remote, writable: writable}
	} else if st, err := os.Stat(dir); err == nil && st.IsDir() {
		lr, err := fs.NewLoopbackRoot(dir)
		if err != nil {
			return nil, err
		}
		root = &localNode{LoopbackNode: lr.(*fs.LoopbackNode), mapped: mf}
	} else {
		// The sandbox made dir for the mount: only what the mapping maps is in it.
		root = &mappedOnly{dir: dir, mapped: mf}
	}
	return serve(device, root, "mirrord-mapped:"+dir)
}

// hostUID and hostGID are the developer's, which the sandbox's user namespace calls 0.
var hostUID, hostGID = uint32(os.Getuid()), uint32(os.Getgid())

// own shows the developer's files as the command's own (it is root of its namespace, the
// developer outside). Other owners stay, and the kernel shows them as unmapped.
func own(a *fuse.Attr) {
	if a.Uid == hostUID {
		a.Uid = 0
	}
	if a.Gid == hostGID {
		a.Gid = 0
	}
}

// mapped is what the nodes of a mapped mount share: the mapping and the target's files.
type mapped struct {
	m        *fsmap.Mapping
	r        Remote
	writable bool
}

// lookup is the target's file for local path p, a child of parent, when the mapping maps it.
func (mf mapped) lookup(ctx context.Context, parent *fs.Inode, p string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno, bool) {
	remote, ok := mf.m.Map(p)
	if !ok {
		return nil, 0, false
	}
	remote, s, e := followRemote(mf.r, remote)
	if e != 0 {
		return nil, e, true
	}
	fill(&out.Attr, s)
	child := &node{r: mf.r, path: remote, writable: mf.writable}
	return parent.NewInode(ctx, child, fs.StableAttr{Mode: s.Mode & syscall.S_IFMT}), 0, true
}

// maxLinks is how many symbolic links followRemote follows, as the kernel's ELOOP limit.
const maxLinks = 40

// followRemote is the target's path p with its symbolic links followed there, and its
// attributes. A mapped path stands for what the target's open(2) of it would reach: left a
// link, the kernel would resolve a relative one (a ConfigMap's config.yaml is a link to
// ..data/config.yaml) next to the developer's path instead.
func followRemote(r Remote, p string) (string, *protocol.Stat, syscall.Errno) {
	n := &node{r: r}
	for range maxLinks {
		s, e := n.stat(p)
		if e != 0 || s.Mode&syscall.S_IFMT != syscall.S_IFLNK {
			return p, s, e
		}
		resp, err := r.Do(protocol.Request{Op: protocol.OpReadlink, Path: p})
		if err != nil {
			return p, nil, errno(err)
		}
		if path.IsAbs(resp.Link) {
			p = path.Clean(resp.Link)
		} else {
			p = path.Join(path.Dir(p), resp.Link)
		}
	}
	return p, nil, syscall.ELOOP
}

// localNode is a developer's file or directory under a mapped mount.
type localNode struct {
	*fs.LoopbackNode
	mapped
}

var (
	_ fs.NodeWrapChilder = (*localNode)(nil)
	_ fs.NodeLookuper    = (*localNode)(nil)
	_ fs.NodeGetattrer   = (*localNode)(nil)
	_ fs.NodeCreater     = (*localNode)(nil)
	_ fs.NodeMkdirer     = (*localNode)(nil)
)

// WrapChild makes the loopback's children localNodes too (the target's nodes stay as they are).
func (n *localNode) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	if l, ok := ops.(*fs.LoopbackNode); ok {
		return &localNode{LoopbackNode: l, mapped: n.mapped}
	}
	return ops
}

func (n *localNode) localPath(name string) string {
	return filepath.Join(n.RootData.Path, n.Path(nil), name)
}

func (n *localNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if ch, e, ok := n.lookup(ctx, n.EmbeddedInode(), n.localPath(name), out); ok {
		return ch, e
	}
	ch, e := n.LoopbackNode.Lookup(ctx, name, out)
	own(&out.Attr)
	return ch, e
}

func (n *localNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	e := n.LoopbackNode.Getattr(ctx, f, out)
	own(&out.Attr)
	return e
}

// Create and Mkdir of a path the mapping maps would make the developer's file where the
// command means the target's: the target's files are never created.
func (n *localNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if _, ok := n.m.Map(n.localPath(name)); ok {
		return nil, nil, 0, syscall.EROFS
	}
	ch, fh, fl, e := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	own(&out.Attr)
	return ch, fh, fl, e
}

func (n *localNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if _, ok := n.m.Map(n.localPath(name)); ok {
		return nil, syscall.EROFS
	}
	ch, e := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	own(&out.Attr)
	return ch, e
}

// mappedOnly is a mount point the developer's machine lacks: it holds only mapped paths.
type mappedOnly struct {
	fs.Inode
	dir string
	mapped
}

var (
	_ fs.NodeLookuper  = (*mappedOnly)(nil)
	_ fs.NodeGetattrer = (*mappedOnly)(nil)
	_ fs.NodeReaddirer = (*mappedOnly)(nil)
)

func (n *mappedOnly) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if ch, e, ok := n.lookup(ctx, n.EmbeddedInode(), filepath.Join(n.dir, name), out); ok {
		return ch, e
	}
	return nil, syscall.ENOENT
}

func (n *mappedOnly) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFDIR | 0o755
	out.Nlink = 2
	return 0
}

// Readdir lists nothing: what the mapping maps is found by name only, as in mirrord.
func (n *mappedOnly) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	return fs.NewListDirStream(nil), 0
}
