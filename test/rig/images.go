package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/ociimage"
)

// buildRigImages builds the images every rig node needs besides the project's own: the
// pod sandbox (pause), the sample app (echo), real servers (nginx) and cluster DNS (coredns).
func buildRigImages(p Paths, bins Binaries) ([]string, error) {
	return buildImages(p, filepath.Join(p.Cache, "images"), bins["coredns"])
}

// buildImages writes the pause, echo and nginx images into dir, and the coredns image when a
// coredns binary is given (kind clusters bring their own DNS and sandbox).
func buildImages(p Paths, dir, coredns string) ([]string, error) {
	binDir := filepath.Join(dir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, err
	}
	for _, prog := range []string{"pause", "echo"} {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(binDir, prog), "./test/images/"+prog)
		cmd.Dir = p.Repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %v: %s", prog, err, out)
		}
	}
	specs := map[string]ociimage.Spec{
		"pause.tar": {Ref: pauseImage, Files: map[string]string{"/pause": filepath.Join(binDir, "pause")}, Entrypoint: []string{"/pause"}},
		"echo.tar": {Ref: echoImage, Files: map[string]string{"/echo": filepath.Join(binDir, "echo")},
			Entrypoint: []string{"/echo"}, Cmd: []string{"serve"}},
	}
	// Debian's nginx, a real server that sets its process title (test/images/nginx).
	nginxRoot, err := unpackDebian(p.Cache, "nginx", "nginx-common")
	if err != nil {
		return nil, err
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		return nil, err
	}
	nginxFiles := filepath.Join(p.Repo, "test", "images", "nginx")
	specs["nginx.tar"] = ociimage.Spec{Ref: nginxImage, Roots: []string{nginxRoot},
		Files: map[string]string{
			"/etc/nginx/nginx.conf": filepath.Join(nginxFiles, "nginx.conf"),
			"/etc/passwd":           filepath.Join(nginxFiles, "passwd"),
			"/etc/group":            filepath.Join(nginxFiles, "group"),
			"/var/lib/nginx/.keep":  empty, // its compiled-in temp paths' parent
			"/var/log/nginx/.keep":  empty, // its compiled-in error log, opened before the config
		},
		LibsFor: []string{"/usr/sbin/nginx"}, Entrypoint: []string{"/usr/sbin/nginx"}}
	if coredns != "" {
		specs["coredns.tar"] = ociimage.Spec{Ref: corednsImage, Files: map[string]string{"/coredns": coredns}, Entrypoint: []string{"/coredns"}}
	}
	var out []string
	for file, spec := range specs {
		path := filepath.Join(dir, file)
		if err := ociimage.Write(spec, path); err != nil {
			return nil, err
		}
		out = append(out, path)
	}
	return out, nil
}
