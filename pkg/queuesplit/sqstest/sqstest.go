// Package sqstest runs a real SQS-compatible server for tests: moto's (hack/install-deps.sh
// links it as bin/moto_server).
package sqstest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Binary finds moto's server: $MIRRORD_MOTO_SERVER, else Find in the module this runs in.
func Binary() (string, error) {
	if p := os.Getenv("MIRRORD_MOTO_SERVER"); p != "" {
		return p, nil
	}
	repo := ""
	if dir, err := os.Getwd(); err == nil {
		for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				repo = dir
				break
			}
		}
	}
	return Find(repo)
}

// Find finds moto's server: bin/moto_server of the repository repo (when given), or
// moto_server on PATH.
func Find(repo string) (string, error) {
	if repo != "" {
		if p := filepath.Join(repo, "bin", "moto_server"); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("moto_server"); err == nil {
		return p, nil
	}
	return "", errors.New("no moto_server: run hack/install-deps.sh (it links moto's server as bin/moto_server)")
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// Start runs moto's server on a free loopback port until the test ends and returns its
// endpoint.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	log, err := os.CreateTemp("", "moto-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Close()
		os.Remove(log.Name())
	})
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(endpoint + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return endpoint
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(log.Name())
			t.Fatalf("moto's server did not answer on %s within 30s: %v\n%s", endpoint, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
