// Package ociimage builds single-layer container images as tarballs, without a Docker
// engine or a registry: a rootfs is assembled from files on this machine and written in the
// docker-archive format that `ctr images import` and `kind load image-archive` accept.
package ociimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Spec describes an image.
type Spec struct {
	// Ref is the image reference the tarball is tagged with, e.g. mirrord.local/pause:rig.
	Ref string
	// Files maps paths in the image to paths on this machine. Symlinks are followed.
	Files map[string]string
	// WithLibs lists host executables copied to the same path in the image together with
	// the shared libraries ldd says they need (for dynamically linked tools such as iptables).
	WithLibs []string
	// Dirs lists host directories copied recursively to the same path in the image.
	Dirs []string
	// Roots lists host directories whose trees are copied to the image's root (a Debian
	// package unpacked with dpkg-deb -x, say).
	Roots []string
	// LibsFor lists image paths of executables (from Files or Roots) whose shared libraries,
	// as ldd finds them on this machine, go to the same paths in the image.
	LibsFor []string
	// Owned lists host directory trees copied with their modes and a given owner (a
	// database's data directory, which its server checks).
	Owned []OwnedTree
	// Symlinks maps link paths in the image to their targets.
	Symlinks map[string]string
	// Entrypoint and Cmd of the image config.
	Entrypoint []string
	Cmd        []string
	// Env of the image config; PATH is always set.
	Env []string
}

// OwnedTree is a host directory tree at Image in the image, owned by UID and GID.
type OwnedTree struct {
	Host, Image string
	UID, GID    int
}

// Write builds the image for this machine's architecture and writes it as a tarball to out.
func Write(spec Spec, out string) error {
	tag, err := name.NewTag(spec.Ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", spec.Ref, err)
	}
	img, err := Image(spec, runtime.GOARCH)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return os.Rename(tmp, out)
}

// Image builds the image of spec for linux/arch (the files must be that architecture's).
func Image(spec Spec, arch string) (v1.Image, error) {
	layerTar, err := rootfs(spec)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	// containerd only unpacks images whose platform matches the node.
	cfg.OS, cfg.Architecture = "linux", arch
	cfg.Config.Entrypoint = spec.Entrypoint
	cfg.Config.Cmd = spec.Cmd
	cfg.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, spec.Env...)
	cfg.Config.WorkingDir = "/"
	return mutate.ConfigFile(img, cfg)
}

// rootfs returns the layer: a tar of every file, library, directory and symlink of spec.
func rootfs(spec Spec) ([]byte, error) {
	files := map[string]string{}
	// The Roots' symlinks stay symlinks (a library's soname is one); spec.Symlinks and Files
	// win over what Roots hold at the same path.
	links := map[string]string{}
	for _, root := range spec.Roots {
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			switch {
			case d.Type().IsRegular():
				files["/"+filepath.ToSlash(rel)] = p
			case d.Type()&os.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				links["/"+filepath.ToSlash(rel)] = target
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("copy %s into image: %w", root, err)
		}
	}
	for dst, src := range spec.Files {
		files[dst] = src
		delete(links, dst)
	}
	maps.Copy(links, spec.Symlinks)
	for _, bin := range spec.WithLibs {
		files[bin] = bin
		libs, err := sharedLibs(bin)
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			files[l] = l
		}
	}
	for _, bin := range spec.LibsFor {
		src, ok := files[bin]
		if !ok {
			return nil, fmt.Errorf("LibsFor %s: not among the image's files", bin)
		}
		libs, err := sharedLibs(src)
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			files[l] = l
		}
	}
	for _, dir := range spec.Dirs {
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				files[p] = p
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("copy %s into image: %w", dir, err)
		}
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	addDirs := func(p string) error {
		var parents []string
		for d := path.Dir(p); d != "/" && d != "." && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			dirs[parents[i]] = true
			hdr := &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(parents[i], "/") + "/", Mode: 0o755}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		}
		return nil
	}
	// /tmp is writable scratch space for programs in the image.
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}); err != nil {
		return nil, err
	}
	for _, dst := range sortedKeys(files) {
		src := files[dst]
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("add %s to image: %w", src, err)
		}
		st, err := os.Stat(src)
		if err != nil {
			return nil, err
		}
		if err := addDirs(dst); err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(dst, "/"), Mode: int64(st.Mode().Perm()), Size: int64(len(data))}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	for _, tree := range spec.Owned {
		if err := addDirs(tree.Image); err != nil {
			return nil, err
		}
		err := filepath.WalkDir(tree.Host, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(tree.Host, p)
			name := strings.TrimPrefix(path.Join(tree.Image, filepath.ToSlash(rel)), "/")
			info, err := d.Info()
			if err != nil {
				return err
			}
			hdr := &tar.Header{Name: name, Mode: int64(info.Mode().Perm()), Uid: tree.UID, Gid: tree.GID}
			switch {
			case d.IsDir():
				hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
				return tw.WriteHeader(hdr)
			case d.Type().IsRegular():
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(data))
				if err := tw.WriteHeader(hdr); err != nil {
					return err
				}
				_, err = tw.Write(data)
				return err
			}
			return nil // sockets, links: a data directory has none that matter
		})
		if err != nil {
			return nil, fmt.Errorf("copy %s into image: %w", tree.Host, err)
		}
	}
	for _, link := range sortedKeys(links) {
		if err := addDirs(link); err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(link, "/"), Linkname: links[link], Mode: 0o777}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sharedLibs lists the absolute paths of the libraries (and loader) a host binary needs.
func sharedLibs(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %v: %s", bin, err, out)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		for _, field := range strings.Fields(line) {
			if strings.HasPrefix(field, "/") {
				libs = append(libs, field)
			}
		}
	}
	return libs, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
