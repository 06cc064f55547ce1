// Command dist packages the plugin for krew: one .tar.gz per platform (the binary and the
// LICENSE, with fixed timestamps so the same build gives the same archive) and the manifest
// rendered from krew/mirrord.yaml with each archive's sha256.
//
//	go run ./hack/dist -version v0.1.0 -bin bin/dist -out dist
//
// expects bin/dist/OS_ARCH/kubectl-mirrord for each of linux and darwin on amd64 and arm64.
package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/template"
	"time"
)

// Platform is one os/arch of the manifest.
type Platform struct {
	OS, Arch, Archive, SHA256 string
}

func main() {
	version := flag.String("version", "", "the plugin's version (vX.Y.Z as krew wants it)")
	binDir := flag.String("bin", "bin/dist", "directory with OS_ARCH/kubectl-mirrord")
	out := flag.String("out", "dist", "output directory")
	baseURL := flag.String("base-url", "https://github.com/kubectl-mirrord/kubectl-mirrord/releases/download", "where the archives are published; the version is appended")
	manifest := flag.String("manifest", "krew/mirrord.yaml", "the manifest template")
	flag.Parse()
	if err := run(*version, *binDir, *out, *baseURL, *manifest); err != nil {
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
}

func run(version, binDir, out, baseURL, manifest string) error {
	if version == "" {
		return fmt.Errorf("-version is required (krew needs a semantic version, e.g. v0.1.0)")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var platforms []Platform
	for _, goos := range []string{"linux", "darwin"} {
		for _, arch := range []string{"amd64", "arm64"} {
			p := Platform{OS: goos, Arch: arch, Archive: fmt.Sprintf("kubectl-mirrord_%s_%s.tar.gz", goos, arch)}
			sum, err := archive(filepath.Join(out, p.Archive), filepath.Join(binDir, goos+"_"+arch, "kubectl-mirrord"), "LICENSE")
			if err != nil {
				return fmt.Errorf("%s/%s: %w", goos, arch, err)
			}
			p.SHA256 = sum
			platforms = append(platforms, p)
			fmt.Printf("%s  %s\n", sum, p.Archive)
		}
	}
	tmpl, err := template.ParseFiles(manifest)
	if err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(out, "mirrord.yaml"))
	if err != nil {
		return err
	}
	defer f.Close()
	return tmpl.Execute(f, map[string]any{"Version": version, "BaseURL": baseURL + "/" + version, "Platforms": platforms})
}

// archive writes a .tar.gz of the binary and the license and returns its sha256.
func archive(path, binary, license string) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	gz := gzip.NewWriter(io.MultiWriter(f, h))
	tw := tar.NewWriter(gz)
	for _, file := range []struct {
		src, name string
		mode      int64
	}{{binary, "kubectl-mirrord", 0o755}, {license, "LICENSE", 0o644}} {
		b, err := os.ReadFile(file.src)
		if err != nil {
			return "", err
		}
		hdr := &tar.Header{Name: file.name, Mode: file.mode, Size: int64(len(b)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", err
		}
		if _, err := tw.Write(b); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
