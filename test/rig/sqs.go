package main

import (
	"context"
	"io"
	"net/http"
	"net/rpc"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/queuesplit/sqstest"
)

// The rig's SQS: moto's server (a real SQS-compatible server, hack/install-deps.sh links it
// as bin/moto_server) on the bridge, where pods of every cluster and the tests reach it,
// for queue splitting.
const sqsAddr = bridgeIP + ":5100"

// SQSEndpoint is the rig's SQS endpoint.
const SQSEndpoint = "http://" + sqsAddr

// startSQS runs moto's server under the supervisor, in the host's network namespace, and
// waits until it answers.
func startSQS(ctx context.Context, p Paths, sup *rpc.Client) error {
	bin, err := sqstest.Find(p.Repo)
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
