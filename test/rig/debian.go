package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// unpackDebian downloads Debian's packages pkgs (the versions apt has for this machine) and
// unpacks them into one tree under cache, once per package list: the e2e suite's real servers
// are made from them, without installing anything on this machine.
func unpackDebian(cache string, pkgs ...string) (string, error) {
	sum := sha256.Sum256([]byte(strings.Join(pkgs, " ")))
	dir := filepath.Join(cache, "debian", hex.EncodeToString(sum[:8]))
	root := filepath.Join(dir, "root")
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		return root, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	debs := filepath.Join(dir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return "", err
	}
	download := func() ([]byte, error) {
		cmd := exec.Command("apt-get", append([]string{"download", "-qq"}, pkgs...)...)
		cmd.Dir = debs
		return cmd.CombinedOutput()
	}
	if _, err := download(); err != nil {
		// A machine that never ran apt-get update has no package lists.
		if out, err := exec.Command("apt-get", "update", "-qq").CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get update: %v: %s", err, out)
		}
		if out, err := download(); err != nil {
			return "", fmt.Errorf("apt-get download %s: %v: %s", strings.Join(pkgs, " "), err, out)
		}
	}
	files, err := filepath.Glob(filepath.Join(debs, "*.deb"))
	if err != nil || len(files) != len(pkgs) {
		return "", fmt.Errorf("apt-get download %s: got %d packages, want %d", strings.Join(pkgs, " "), len(files), len(pkgs))
	}
	for _, f := range files {
		if out, err := exec.Command("dpkg-deb", "-x", f, root).CombinedOutput(); err != nil {
			return "", fmt.Errorf("dpkg-deb -x %s: %v: %s", f, err, out)
		}
	}
	return root, os.WriteFile(filepath.Join(dir, "done"), nil, 0o644)
}
