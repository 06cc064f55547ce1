// Command release publishes a release's images and checksums, without Docker: the
// kubectl-mirrord image for linux/amd64 and linux/arm64 (iptables from Debian's packages of
// each architecture, fetched with apt into a private state directory) as one multi-platform
// index, pushed to REGISTRY/kubectl-mirrord:VERSION; and SHA256SUMS of the krew archives
// `make dist` built. `make release REGISTRY=...` runs it.
//
//	go run ./hack/release -version v0.1.0 -registry ghcr.io/kubectl-mirrord -bin bin/dist -dist dist
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubectl-mirrord/kubectl-mirrord/hack/imagespec"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/ociimage"
	kmversion "github.com/kubectl-mirrord/kubectl-mirrord/pkg/version"
)

// Arches are the image's platforms (the plugin's archives add darwin).
var Arches = []string{"amd64", "arm64"}

func main() {
	version := flag.String("version", "", "the release, e.g. v0.1.0")
	registry := flag.String("registry", "", "where the image goes: REGISTRY[/ORG], e.g. ghcr.io/kubectl-mirrord")
	bin := flag.String("bin", "bin/dist", "the binaries make dist built (linux_ARCH/kubectl-mirrord)")
	dist := flag.String("dist", "dist", "the krew archives make dist built; SHA256SUMS and IMAGE are written here")
	cache := flag.String("cache", filepath.Join(os.TempDir(), "kubectl-mirrord-release"), "where Debian's packages are fetched and unpacked")
	insecure := flag.Bool("insecure", false, "the registry speaks plain HTTP (a local one)")
	checkBase := flag.Bool("check-base", true, "refuse unless kustomize/base names this release's image tag")
	flag.Parse()
	if err := run(*version, *registry, *bin, *dist, *cache, *insecure, *checkBase); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(version, registry, bin, dist, cache string, insecure, checkBase bool) error {
	if !kmversion.IsReleaseTag(version) || registry == "" {
		return fmt.Errorf("usage: release -version vX.Y.Z -registry REGISTRY[/ORG] (got %q, %q)", version, registry)
	}
	if checkBase {
		b, err := os.ReadFile("kustomize/base/controller.yaml")
		if err != nil {
			return err
		}
		if want := "ghcr.io/kubectl-mirrord/kubectl-mirrord:" + version; !strings.Contains(string(b), "image: "+want+"\n") {
			return fmt.Errorf("kustomize/base/controller.yaml does not name %s: set the image's tag to %s and commit it, so that `kubectl apply -k ...?ref=%s` installs this release", want, version, version)
		}
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.NewTag(strings.TrimSuffix(registry, "/")+"/kubectl-mirrord:"+version, opts...)
	if err != nil {
		return err
	}
	idx := v1.ImageIndex(empty.Index)
	for _, arch := range Arches {
		root, err := debianRoot(cache, arch)
		if err != nil {
			return err
		}
		spec, err := imagespec.KubectlMirrord(ref.String(), filepath.Join(bin, "linux_"+arch, "kubectl-mirrord"), root)
		if err != nil {
			return err
		}
		img, err := ociimage.Image(spec, arch)
		if err != nil {
			return fmt.Errorf("linux/%s image: %w", arch, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
		fmt.Printf("built linux/%s\n", arch)
	}
	if err := remote.WriteIndex(ref, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	image := ref.Context().String() + "@" + d.String()
	fmt.Println("pushed", image)
	if err := os.WriteFile(filepath.Join(dist, "IMAGE"), []byte(image+"\n"), 0o644); err != nil {
		return err
	}
	return checksums(dist)
}

// debianRoot unpacks IptablesPackages for arch under cache, once, with apt's state (package
// lists and downloads) kept there: this machine's apt configuration is not touched.
func debianRoot(cache, arch string) (string, error) {
	dir := filepath.Join(cache, "debian-"+arch)
	root := filepath.Join(dir, "root")
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		return root, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	debs := filepath.Join(dir, "debs")
	for _, d := range []string{debs, filepath.Join(dir, "lists", "partial"), filepath.Join(dir, "cache", "archives", "partial")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	apt := func(args ...string) error {
		cmd := exec.Command("apt-get", append([]string{"-qq", "-o", "APT::Architecture=" + arch, "-o", "APT::Architectures=" + arch,
			"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"), "-o", "Dir::Cache=" + filepath.Join(dir, "cache")}, args...)...)
		cmd.Dir = debs
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s (%s): %v: %s", args[0], arch, err, out)
		}
		return nil
	}
	if err := apt("update"); err != nil {
		return "", err
	}
	var pkgs []string
	for _, p := range imagespec.IptablesPackages {
		pkgs = append(pkgs, p+":"+arch)
	}
	if err := apt(append([]string{"download"}, pkgs...)...); err != nil {
		return "", err
	}
	files, err := filepath.Glob(filepath.Join(debs, "*.deb"))
	if err != nil || len(files) != len(pkgs) {
		return "", fmt.Errorf("apt-get download for %s: got %d packages, want %d", arch, len(files), len(pkgs))
	}
	for _, f := range files {
		if out, err := exec.Command("dpkg-deb", "-x", f, root).CombinedOutput(); err != nil {
			return "", fmt.Errorf("dpkg-deb -x %s: %v: %s", f, err, out)
		}
	}
	return root, os.WriteFile(filepath.Join(dir, "done"), nil, 0o644)
}

// checksums writes SHA256SUMS for the archives in dist, as sha256sum -c reads it.
func checksums(dist string) error {
	files, err := filepath.Glob(filepath.Join(dist, "*.tar.gz"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no archives in %s: run make dist first", dist)
	}
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		h := sha256.New()
		fh, err := os.Open(f)
		if err != nil {
			return err
		}
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), filepath.Base(f))
	}
	return os.WriteFile(filepath.Join(dist, "SHA256SUMS"), []byte(b.String()), 0o644)
}
