package main

import (
	"context"
	"fmt"
	"net"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// clusterFiles are the paths of one cluster's PKI and kubeconfigs.
type clusterFiles struct {
	pki, ca, adminKubeconfig string
}

func filesOf(c Cluster) clusterFiles {
	return clusterFiles{
		pki:             c.path("pki"),
		ca:              c.path("pki", "ca.crt"),
		adminKubeconfig: c.path("admin.kubeconfig"),
	}
}

// writePKI creates the cluster's CA, the serving and client certificates of every
// component, the service account signing key, and a kubeconfig per client.
func writePKI(c Cluster) error {
	f := filesOf(c)
	if err := os.MkdirAll(f.pki, 0o755); err != nil {
		return err
	}
	ca, err := newAuthority("mirrord-rig-" + c.Name + "-ca")
	if err != nil {
		return err
	}
	if err := os.WriteFile(f.ca, ca.certPEM, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(f.pki, "ca.key"), mustECKeyPEM(ca), 0o600); err != nil {
		return err
	}
	crt, key, err := ca.issue(certRequest{
		cn:     "kube-apiserver",
		server: true,
		dns: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc." + clusterDomain, "localhost", c.Node},
		ips: []net.IP{net.ParseIP(c.NodeIP), net.ParseIP(kubernetesSvc), net.ParseIP("127.0.0.1")},
	})
	if err != nil {
		return err
	}
	if err := writeKeyPair(f.pki, "apiserver", crt, key); err != nil {
		return err
	}
	// The service account key pair signs and verifies pod tokens.
	_, saKey, err := ca.issue(certRequest{cn: "service-accounts"})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(f.pki, "sa.key"), saKey, 0o600); err != nil {
		return err
	}
	if err := writePublicKey(saKey, filepath.Join(f.pki, "sa.pub")); err != nil {
		return err
	}
	clients := []struct {
		file, cn string
		orgs     []string
	}{
		{"admin", "rig-admin", []string{"system:masters"}},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}},
		{"controller-manager", "system:kube-controller-manager", nil},
		{"scheduler", "system:kube-scheduler", nil},
		{"kubelet", "system:node:" + c.Node, []string{"system:nodes"}},
		{"kube-proxy", "system:kube-proxy", nil},
	}
	for _, cl := range clients {
		crt, key, err := ca.issue(certRequest{cn: cl.cn, orgs: cl.orgs})
		if err != nil {
			return err
		}
		if err := writeKeyPair(f.pki, cl.file, crt, key); err != nil {
			return err
		}
		if cl.file == "apiserver-kubelet-client" {
			continue
		}
		cfg := kubeconfig("rig-"+c.Name, c.APIServer(), ca.certPEM, crt, key, cl.cn)
		if err := writeKubeconfig(c.path(cl.file+".kubeconfig"), cfg); err != nil {
			return err
		}
	}
	return nil
}

// writeConfigs writes containerd's, the CNI's, the kubelet's and kube-proxy's configuration.
func writeConfigs(c Cluster) error {
	for _, d := range []string{"containerd", "cni/net.d", "cni/ipam", "kubelet", "logs", "pod-logs", "etcd"} {
		if err := os.MkdirAll(c.path(d), 0o755); err != nil {
			return err
		}
	}
	containerd := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = %[3]q

[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  restrict_oom_score_adj = true
  tolerate_missing_hugetlb_controller = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %[6]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[7]q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %[8]q
`, c.path("containerd", "root"), c.path("containerd", "state"), containerdSocket(c),
		c.path("containerd", "opt"), pauseImage, c.path("containerd", "runc"), c.path("cni", "net.d"),
		c.path("containerd", "certs.d"))
	if err := os.WriteFile(c.path("containerd", "config.toml"), []byte(containerd), 0o644); err != nil {
		return err
	}
	// The rig's registry speaks plain HTTP on the bridge (see registry.go).
	hosts := c.path("containerd", "certs.d", registryAddr)
	if err := os.MkdirAll(hosts, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(hosts, "hosts.toml"), []byte(fmt.Sprintf(
		"server = \"http://%[1]s\"\n\n[host.\"http://%[1]s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", registryAddr)), 0o644); err != nil {
		return err
	}

	// ipMasq is off: pod traffic is never NATed off the machine.
	cni := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "rig",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, c.PodCIDR, c.path("cni", "ipam"))
	if err := os.WriteFile(c.path("cni", "net.d", "10-rig.conflist"), []byte(cni), 0o644); err != nil {
		return err
	}

	kubelet := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[1]q}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: /%[2]s
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
podLogsDir: %[3]q
volumePluginDir: %[4]q
containerRuntimeEndpoint: unix://%[5]s
clusterDNS: [%[6]q]
clusterDomain: %[7]s
resolvConf: ""
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
serializeImagePulls: false
maxPods: 1000
# Hundreds of agent pods start at once in the benchmarks: the default 50 QPS makes the
# kubelet's status updates the bottleneck.
kubeAPIQPS: 100
kubeAPIBurst: 200
protectKernelDefaults: false
shutdownGracePeriod: 0s
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%"}
`, filesOf(c).ca, c.Cgroup(), c.path("pod-logs"), c.path("kubelet", "volume-plugins"),
		containerdSocket(c), clusterDNSIP, clusterDomain)
	if err := os.WriteFile(c.path("kubelet", "config.yaml"), []byte(kubelet), 0o644); err != nil {
		return err
	}

	// conntrack limits are left alone: they are global sysctls, shared with the host.
	proxy := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %q}
mode: iptables
clusterCIDR: %q
hostnameOverride: %s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`, c.path("kube-proxy.kubeconfig"), c.ClusterCIDR, c.Node)
	return os.WriteFile(c.path("kube-proxy.yaml"), []byte(proxy), 0o644)
}

func containerdSocket(c Cluster) string { return c.path("containerd", "containerd.sock") }

// components returns the command lines of a cluster's processes, in start order.
func components(c Cluster, bins Binaries) map[string][]string {
	pki := func(n string) string { return filepath.Join(filesOf(c).pki, n) }
	return map[string][]string{
		"etcd": {bins["etcd"], "--name", c.Name, "--data-dir", c.path("etcd"),
			"--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
			"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
			"--initial-cluster", c.Name + "=http://127.0.0.1:2380",
			// A test rig trades durability for speed; etcd's data dies with the rig anyway.
			"--unsafe-no-fsync", "--log-level", "warn"},
		"containerd": {"containerd", "--config", c.path("containerd", "config.toml")},
		"kube-apiserver": {bins["kube-apiserver"],
			"--etcd-servers", "http://127.0.0.1:2379",
			"--bind-address", "0.0.0.0", "--secure-port", strconv.Itoa(apiPort), "--advertise-address", c.NodeIP,
			"--endpoint-reconciler-type", "lease",
			"--service-cluster-ip-range", serviceCIDR,
			"--tls-cert-file", pki("apiserver.crt"), "--tls-private-key-file", pki("apiserver.key"),
			"--client-ca-file", pki("ca.crt"),
			"--kubelet-client-certificate", pki("apiserver-kubelet-client.crt"),
			"--kubelet-client-key", pki("apiserver-kubelet-client.key"),
			"--kubelet-preferred-address-types", "InternalIP",
			"--service-account-issuer", "https://kubernetes.default.svc." + clusterDomain,
			"--service-account-key-file", pki("sa.pub"), "--service-account-signing-key-file", pki("sa.key"),
			"--authorization-mode", "Node,RBAC", "--allow-privileged=true",
			"--enable-admission-plugins", "NodeRestriction",
			"--profiling=false", "--v=1"},
		"kube-controller-manager": {bins["kube-controller-manager"],
			"--kubeconfig", c.path("controller-manager.kubeconfig"),
			"--authentication-kubeconfig", c.path("controller-manager.kubeconfig"),
			"--authorization-kubeconfig", c.path("controller-manager.kubeconfig"),
			"--use-service-account-credentials=true", "--root-ca-file", pki("ca.crt"),
			"--service-account-private-key-file", pki("sa.key"),
			"--cluster-signing-cert-file", pki("ca.crt"), "--cluster-signing-key-file", pki("ca.key"),
			"--leader-elect=false", "--bind-address", "127.0.0.1", "--v=1",
			// Sized for hundreds of Jobs at once: the defaults (20 QPS, 5 Job workers) make the
			// Job controller the bottleneck when the benchmarks start 200 agents.
			"--kube-api-qps", "100", "--kube-api-burst", "200", "--concurrent-job-syncs", "20"},
		"kube-scheduler": {bins["kube-scheduler"],
			"--kubeconfig", c.path("scheduler.kubeconfig"),
			"--authentication-kubeconfig", c.path("scheduler.kubeconfig"),
			"--authorization-kubeconfig", c.path("scheduler.kubeconfig"),
			"--leader-elect=false", "--bind-address", "127.0.0.1", "--v=1"},
		"kubelet": {bins["kubelet"],
			"--config", c.path("kubelet", "config.yaml"),
			"--kubeconfig", c.path("kubelet.kubeconfig"),
			"--root-dir", c.path("kubelet", "root"),
			"--cert-dir", c.path("kubelet", "pki"),
			"--hostname-override", c.Node, "--node-ip", c.NodeIP, "--v=1"},
		"kube-proxy": {bins["kube-proxy"], "--config", c.path("kube-proxy.yaml"), "--v=1"},
	}
}

// upCluster brings one cluster up: network, PKI, configs, processes, images, bootstrap objects.
func upCluster(ctx context.Context, c Cluster, all []Cluster, bins Binaries, images []string, sup *rpc.Client, logf func(string, ...any)) error {
	start := time.Now()
	if err := setupNodeNetwork(c, all); err != nil {
		return err
	}
	if err := writePKI(c); err != nil {
		return err
	}
	if err := writeConfigs(c); err != nil {
		return err
	}
	cmds := components(c, bins)
	startProc := func(name string) error {
		var pid int
		return sup.Call("Supervisor.Start", ProcSpec{
			Key: c.Name + "/" + name, Argv: cmds[name], NetNS: c.NetNS, Cgroup: c.Cgroup(),
			Log: c.path("logs", name+".log"),
		}, &pid)
	}
	for _, name := range []string{"etcd", "containerd", "kube-apiserver"} {
		if err := startProc(name); err != nil {
			return err
		}
	}
	// Images go in while the API server boots; the kubelet must find them at its first pod.
	if err := waitFor(ctx, 30*time.Second, "containerd socket", func() error {
		_, err := os.Stat(containerdSocket(c))
		return err
	}); err != nil {
		return fmt.Errorf("%s: %w (see %s)", c.Name, err, c.path("logs", "containerd.log"))
	}
	for _, img := range images {
		out, err := exec.CommandContext(ctx, "ctr", "--address", containerdSocket(c), "-n", "k8s.io",
			"images", "import", img).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: import %s: %v: %s", c.Name, img, err, out)
		}
	}
	cs, err := clientFor(filesOf(c).adminKubeconfig)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, 60*time.Second, "API server ready", func() error {
		_, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	}); err != nil {
		return fmt.Errorf("%s: %w (see %s)", c.Name, err, c.path("logs", "kube-apiserver.log"))
	}
	for _, name := range []string{"kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"} {
		if err := startProc(name); err != nil {
			return err
		}
	}
	if err := bootstrap(ctx, cs, c); err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	logf("cluster %s ready in %s: %s", c.Name, time.Since(start).Round(100*time.Millisecond), c.APIServer())
	return nil
}

func clientFor(kubeconfigPath string) (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 50, 100
	return kubernetes.NewForConfig(cfg)
}

// waitFor polls check until it succeeds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = check(); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
