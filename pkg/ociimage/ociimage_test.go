package ociimage

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestWriteRoundTrips(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "prog")
	if err := os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(data, "base"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "base", "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(dir, "pkg")
	if err := os.MkdirAll(filepath.Join(pkg, "etc", "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkg, "etc", "app", "conf"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A library's soname is a symlink in its package: it must stay one.
	if err := os.Symlink("conf", filepath.Join(pkg, "etc", "app", "conf.1")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "img.tar")
	spec := Spec{
		Ref:        "mirrord.local/test:v1",
		Roots:      []string{pkg},
		Owned:      []OwnedTree{{Host: data, Image: "/var/lib/db", UID: 999, GID: 998}},
		Files:      map[string]string{"/usr/local/bin/prog": bin},
		Symlinks:   map[string]string{"/usr/bin/prog": "/usr/local/bin/prog"},
		Entrypoint: []string{"/usr/local/bin/prog"},
		Cmd:        []string{"serve"},
	}
	if err := Write(spec, out); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(spec.Ref)
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("the tarball is not an image tagged %s: %v", spec.Ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s (containerd skips other platforms)", cfg.OS, cfg.Architecture, runtime.GOARCH)
	}
	if len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != "/usr/local/bin/prog" || cfg.Config.Cmd[0] != "serve" {
		t.Errorf("entrypoint %v cmd %v", cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	files := map[string]*tar.Header{}
	tr := tar.NewReader(mutate.Extract(img))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = hdr
	}
	if h := files["usr/local/bin/prog"]; h == nil || h.Mode&0o111 == 0 {
		t.Errorf("binary missing or not executable: %+v", h)
	}
	if h := files["etc/app/conf.1"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "conf" {
		t.Errorf("a Root's symlink is not one in the image: %+v", h)
	}
	if h := files["usr/bin/prog"]; h == nil || h.Linkname != "/usr/local/bin/prog" {
		t.Errorf("symlink missing: %+v", h)
	}
	if h := files["etc/app/conf"]; h == nil {
		t.Errorf("a root's file missing: %v", files)
	}
	for name, mode := range map[string]int64{"var/lib/db": 0o700, "var/lib/db/base": 0o700, "var/lib/db/base/PG_VERSION": 0o600} {
		if h := files[name]; h == nil || h.Uid != 999 || h.Gid != 998 || h.Mode&0o777 != mode {
			t.Errorf("owned %s: %+v, want owner 999:998 and mode %o", name, h, mode)
		}
	}
	if files["usr/local/bin"] == nil || files["tmp"] == nil || files["tmp"].Mode&0o1777 != 0o1777 {
		t.Errorf("parent directories or /tmp missing: %v", files)
	}
}

func TestWriteRejectsBadInput(t *testing.T) {
	if err := Write(Spec{Ref: "Not A Ref"}, filepath.Join(t.TempDir(), "x.tar")); err == nil {
		t.Error("an invalid reference was accepted")
	}
	if err := Write(Spec{Ref: "a/b:c", Files: map[string]string{"/x": "/does/not/exist"}}, filepath.Join(t.TempDir(), "x.tar")); err == nil {
		t.Error("a missing file was accepted")
	}
}
