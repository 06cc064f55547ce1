package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/rpc"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The rig's image registry: go-containerregistry's registry on the bridge, blobs on disk
// under the rig's state and manifests in its memory. Every node's containerd pulls the
// project's image from it over plain HTTP, by reference, as a real cluster pulls from its
// registry; `rig push` puts an image tarball there.
const registryAddr = bridgeIP + ":5000"

func registryDir(state string) string { return filepath.Join(state, "registry") }

// cmdServeRegistry serves the registry until it is killed (the supervisor runs it).
func cmdServeRegistry(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: rig serve-registry DIR")
	}
	if err := os.MkdirAll(args[0], 0o755); err != nil {
		return err
	}
	srv := &http.Server{
		Addr: registryAddr,
		Handler: registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(args[0])),
			registry.Logger(log.New(os.Stderr, "registry: ", log.LstdFlags))),
		ReadHeaderTimeout: 10 * time.Second,
	}
	return srv.ListenAndServe()
}

// startRegistry runs the registry under the supervisor, in the host's network namespace
// (the bridge's address), and waits until it answers.
func startRegistry(ctx context.Context, p Paths, sup *rpc.Client) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var pid int
	if err := sup.Call("Supervisor.Start", ProcSpec{
		Key: "registry", Argv: []string{self, "serve-registry", registryDir(p.State)}, Cgroup: cgroupParent,
		Log: filepath.Join(p.State, "registry.log"),
	}, &pid); err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Second}
	return waitFor(ctx, 10*time.Second, "registry", func() error {
		resp, err := client.Get("http://" + registryAddr + "/v2/")
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		return nil
	})
}

// cmdPush pushes an image tarball to the rig's registry as REPOSITORY:TAG and prints the
// reference by digest that pulls exactly it (a rebuilt image under the same tag included).
func cmdPush(ctx context.Context, args []string) error {
	if len(args) != 2 || !strings.Contains(args[1], ":") {
		return fmt.Errorf("usage: rig push IMAGE.tar REPOSITORY:TAG")
	}
	img, err := tarball.ImageFromPath(args[0], nil)
	if err != nil {
		return fmt.Errorf("reading %s: %w (build it with `make image`)", args[0], err)
	}
	ref, err := name.NewTag(registryAddr+"/"+args[1], name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("pushing to the rig's registry (are the clusters up? make clusters): %w", err)
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Println(ref.Context().String() + "@" + d.String())
	return nil
}
