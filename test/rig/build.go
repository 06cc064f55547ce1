package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// toolBuild is a set of binaries built from one of the tools modules under test/rig/tools.
type toolBuild struct {
	name     string
	module   string // directory under test/rig/tools
	packages []string
	ldflags  string
}

var k8sLdflags = strings.Join([]string{
	"-s -w",
	"-X k8s.io/component-base/version.gitVersion=" + kubernetesVersion,
	"-X k8s.io/component-base/version.gitMajor=1",
	"-X k8s.io/component-base/version.gitMinor=36",
	"-X k8s.io/component-base/version.gitTreeState=clean",
	"-X k8s.io/client-go/pkg/version.gitVersion=" + kubernetesVersion,
	"-X k8s.io/client-go/pkg/version.gitMajor=1",
	"-X k8s.io/client-go/pkg/version.gitMinor=36",
}, " ")

var toolBuilds = []toolBuild{
	{
		name:   "kubernetes",
		module: "kubernetes",
		packages: []string{
			"k8s.io/kubernetes/cmd/kube-apiserver",
			"k8s.io/kubernetes/cmd/kube-controller-manager",
			"k8s.io/kubernetes/cmd/kube-scheduler",
			"k8s.io/kubernetes/cmd/kubelet",
			"k8s.io/kubernetes/cmd/kube-proxy",
		},
		ldflags: k8sLdflags,
	},
	{name: "etcd", module: "etcd", packages: []string{"go.etcd.io/etcd/server/v3"}, ldflags: "-s -w"},
	{name: "coredns", module: "coredns", packages: []string{"."}, ldflags: "-s -w"},
	{name: "kubectl", module: "kubectl", packages: []string{"."}, ldflags: k8sLdflags},
}

// Binaries maps a binary name (kube-apiserver, etcd, coredns, ...) to its cached path.
type Binaries map[string]string

// ensureBinaries builds whatever is missing from the cache. A build is keyed by the hash
// of its module files and flags, so a version bump rebuilds and nothing else does.
func ensureBinaries(p Paths, logf func(string, ...any)) (Binaries, error) {
	bins := Binaries{}
	for _, tb := range toolBuilds {
		modDir := filepath.Join(p.Repo, "test", "rig", "tools", tb.module)
		key, err := moduleKey(modDir, tb.ldflags)
		if err != nil {
			return nil, err
		}
		outDir := filepath.Join(p.Cache, "build", tb.name+"-"+key)
		if _, err := os.Stat(filepath.Join(outDir, ".complete")); err != nil {
			logf("building %s from the Go module proxy (cold; cached in %s)", tb.name, outDir)
			start := time.Now()
			tmp := outDir + ".tmp"
			_ = os.RemoveAll(tmp)
			out := tmp + "/"
			if len(tb.packages) == 1 {
				out = filepath.Join(tmp, tb.name)
			}
			args := append([]string{"build", "-trimpath", "-ldflags", tb.ldflags, "-o", out}, tb.packages...)
			cmd := exec.Command("go", args...)
			cmd.Dir = modDir
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				return nil, fmt.Errorf("build %s: %w", tb.name, err)
			}
			if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
				return nil, err
			}
			_ = os.RemoveAll(outDir)
			if err := os.Rename(tmp, outDir); err != nil {
				return nil, err
			}
			logf("built %s in %s", tb.name, time.Since(start).Round(time.Second))
		}
		entries, err := os.ReadDir(outDir)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") {
				bins[e.Name()] = filepath.Join(outDir, e.Name())
			}
		}
	}
	for _, name := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "etcd", "coredns", "kubectl"} {
		if bins[name] == "" {
			return nil, fmt.Errorf("binary %s missing from the build cache %s: remove it and run again", name, p.Cache)
		}
	}
	return bins, nil
}

// moduleKey hashes a tools module's go.mod, go.sum and Go files, and the build flags.
func moduleKey(dir, ldflags string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); n == "go.mod" || n == "go.sum" || strings.HasSuffix(n, ".go") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintln(h, ldflags)
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return "", err
		}
		fmt.Fprintln(h, n)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}
