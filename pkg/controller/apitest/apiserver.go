/*
Copyright The kubectl-mirrord Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package apitest runs a real kube-apiserver and etcd without nodes, on loopback, for tests of
// admission, RBAC and controllers that take seconds instead of the e2e suite's minutes; the
// tests run in parallel, each with its own API server. The
// controller manager runs two controllers: ClusterRole aggregation (so mirrord-user has its
// rules) and namespace deletion.
//
// The binaries are the rig's (`rig binaries` builds or finds them), handed over as
// MIRRORD_K8S_BINARIES=name=path,...; `make unit` and `make apitest` do that.
package apitest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/install"
)

// Server is a running API server with an admin's clients.
type Server struct {
	// Config is the admin's (group system:masters); Impersonate derives users from it.
	Config     *rest.Config
	Kubeconfig string
	Kube       kubernetes.Interface
	Mirrord    versioned.Interface
	// CA is the API server's own (self-signed) serving certificate, to trust it by.
	CA   []byte
	bins map[string]string
}

const adminToken = "apiserver-test-admin"

// Start starts etcd, kube-apiserver and the ClusterRole aggregation controller for t; they
// stop when t ends. It skips t when MIRRORD_K8S_BINARIES is not set at all (go test ./...).
func Start(t *testing.T) *Server {
	t.Helper()
	given, ok := os.LookupEnv("MIRRORD_K8S_BINARIES")
	if !ok {
		t.Skip("MIRRORD_K8S_BINARIES is not set: run these tests with `make unit` or `make apitest`")
	}
	bins := map[string]string{}
	for kv := range strings.SplitSeq(given, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
			bins[k] = v
		}
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl"} {
		if bins[b] == "" {
			t.Fatalf("MIRRORD_K8S_BINARIES lacks %s (%q): `rig binaries` should print it", b, given)
		}
	}
	dir := t.TempDir()
	ports := freePorts(t, 3)
	etcdClient, etcdPeer, secure := ports[0], ports[1], ports[2]

	start(t, dir, "etcd", bins["etcd"], "--name=t", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls=http://127.0.0.1:"+etcdClient, "--advertise-client-urls=http://127.0.0.1:"+etcdClient,
		"--listen-peer-urls=http://127.0.0.1:"+etcdPeer, "--initial-advertise-peer-urls=http://127.0.0.1:"+etcdPeer,
		"--initial-cluster=t=http://127.0.0.1:"+etcdPeer, "--log-level=error")

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, pubFile, tokens := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub"), filepath.Join(dir, "tokens.csv")
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	write(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	write(t, pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	write(t, tokens, []byte(adminToken+`,admin,admin-uid,"system:masters"`+"\n"))

	start(t, dir, "kube-apiserver", bins["kube-apiserver"], "--etcd-servers=http://127.0.0.1:"+etcdClient,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+secure,
		"--cert-dir="+filepath.Join(dir, "certs"), "--token-auth-file="+tokens,
		"--authorization-mode=RBAC", "--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+pubFile, "--service-account-signing-key-file="+keyFile,
		"--service-cluster-ip-range=10.96.0.0/16", "--endpoint-reconciler-type=none", "--allow-privileged=true")

	cfg := &rest.Config{Host: "https://127.0.0.1:" + secure, BearerToken: adminToken, QPS: 100, Burst: 200,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	waitReady(t, cfg, filepath.Join(dir, "kube-apiserver.log"))

	kubeconfig := filepath.Join(dir, "admin.kubeconfig")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["t"] = &clientcmdapi.Cluster{Server: cfg.Host, InsecureSkipTLSVerify: true}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: adminToken}
	kc.Contexts["t"] = &clientcmdapi.Context{Cluster: "t", AuthInfo: "admin"}
	kc.CurrentContext = "t"
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}
	start(t, dir, "kube-controller-manager", bins["kube-controller-manager"], "--kubeconfig="+kubeconfig,
		"--controllers=clusterrole-aggregation,namespace", "--leader-elect=false", "--secure-port=0")

	ca, err := os.ReadFile(filepath.Join(dir, "certs", "apiserver.crt"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Config: cfg, Kubeconfig: kubeconfig, CA: ca, bins: bins}
	if s.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if s.Mirrord, err = versioned.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return s
}

// Impersonate returns the config of user with groups, as `kubectl --as --as-group` would.
// The API server adds system:authenticated to the groups, as it does for real users.
func (s *Server) Impersonate(user string, groups ...string) *rest.Config {
	c := rest.CopyConfig(s.Config)
	c.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return c
}

// Kubectl runs the rig's kubectl as the admin.
func (s *Server) Kubectl(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.bins["kubectl"], append([]string{"--kubeconfig", s.Kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Install applies a role with install.Apply, as `kubectl mirrord install` does, without
// waiting for its controller (it never runs: there are no nodes).
func (s *Server) Install(t *testing.T, overlay string) {
	t.Helper()
	y, err := install.Render(overlay, install.Options{})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := install.Objects(y)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := install.Apply(ctx, s.InstallCluster(t, io.Discard), objs); err != nil {
		t.Fatalf("installing %s: %v", overlay, err)
	}
}

// InstallCluster is the admin's view of s for pkg/install.
func (s *Server) InstallCluster(t *testing.T, progress io.Writer) install.Cluster {
	t.Helper()
	dyn, err := dynamic.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return install.Cluster{Dynamic: dyn, Mapper: mapper, Progress: progress}
}

// start runs a component until t ends; its output goes to dir/NAME.log, which a failing
// test prints the end of.
func start(t *testing.T, dir, name, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, and SIGKILL if this test binary dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		log.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("%s log (end):\n%s", name, b)
			}
		}
	})
}

func waitReady(t *testing.T, cfg *rest.Config, logPath string) {
	t.Helper()
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: rt, Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get(cfg.Host + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Fatalf("kube-apiserver not ready after 60s (last: %v):\n%s", err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// freePorts are n distinct loopback ports free a moment ago: all are held until the last
// is picked, so two of them cannot be the same port (one listener closed, then handed out
// again, left the API server facing its own etcd's peer port).
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	ports := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return ports
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(fmt.Errorf("writing %s: %w", path, err))
	}
}
