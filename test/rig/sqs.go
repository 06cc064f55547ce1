package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The rig's SQS: moto's server (a real SQS-compatible server, hack/install-deps.sh links it
// as bin/moto_server) on the bridge, where pods of every cluster and the tests reach it,
// for queue splitting.
const sqsAddr = bridgeIP + ":5100"

// SQSEndpoint is the rig's SQS endpoint.
const SQSEndpoint = "http://" + sqsAddr

// motoServer finds moto's server: bin/moto_server of the repository, or on PATH.
func motoServer(p Paths) (string, error) {
	if bin := filepath.Join(p.Repo, "bin", "moto_server"); isExecutableFile(bin) {
		return bin, nil
	}
	if bin, err := exec.LookPath("moto_server"); err == nil {
		return bin, nil
	}
	return "", fmt.Errorf("no moto_server: run hack/install-deps.sh (it links moto's server as bin/moto_server)")
}

func isExecutableFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// startSQS runs moto's server under the supervisor, in the host's network namespace, and
// waits until it answers.
func startSQS(ctx context.Context, p Paths, sup *rpc.Client) error {
	bin, err := motoServer(p)
	if err != nil {
		return err
	}
	host, port, _ := strings.Cut(sqsAddr, ":")
	var pid int
	if err := sup.Call("Supervisor.Start", ProcSpec{
		Key: "sqs", Argv: []string{bin, "-H", host, "-p", port}, Cgroup: cgroupParent,
		Log: filepath.Join(p.State, "sqs.log"),
	}, &pid); err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Second}
	return waitFor(ctx, 60*time.Second, "SQS (moto)", func() error {
		resp, err := client.Get(SQSEndpoint + "/moto-api/")
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	})
}
