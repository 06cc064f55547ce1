// Command rig runs real Kubernetes clusters on this one machine, offline, for the e2e
// tests and the demo: N clusters of one node each, every node in its own network
// namespace with its own containerd, kubelet, kube-proxy and CoreDNS.
//
//	rig up [-clusters N] [-image TAR]...   bring clusters up (builds and caches binaries) with
//	                                       a registry on the bridge (172.30.0.1:5000)
//	                                       and SQS, moto's server (172.30.0.1:5100)
//	rig push TAR REPOSITORY:TAG            push an image to the rig's registry; print its digest reference
//	rig down                               remove everything the rig made
//	rig stop|start CLUSTER COMPONENT       stop or restart one component (fault tests)
//	rig status                             list components
//	rig logs DIR                           copy every component's logs into DIR
//	rig snapshot FILE / rig check FILE     record the host's state / compare with it
//	rig subreaper -- CMD...                run CMD, reaping every orphan it leaves
//	rig images DIR                         build the sample app images into DIR (for kind)
//	rig binaries                           build (or find cached) the Kubernetes binaries; print NAME=PATH lines
//	rig supervise                          (internal) the components' parent
//	rig serve-registry DIR                 (internal) the registry
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func main() {
	log := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "rig: "+format+"\n", args...)
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rig up|down|stop|start|status|logs|snapshot|check|images|load|subreaper ...")
		os.Exit(2)
	}
	p, err := defaultPaths()
	if err != nil {
		log("%v", err)
		os.Exit(1)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	args := os.Args[2:]
	switch os.Args[1] {
	case "up":
		err = cmdUp(ctx, p, args, log)
	case "down":
		start := time.Now()
		err = down(p, log)
		if err == nil {
			log("down in %s", time.Since(start).Round(100*time.Millisecond))
		}
	case "supervise":
		err = runSupervisor(p.State)
	case "stop", "start":
		err = cmdStopStart(p, os.Args[1], args)
	case "status":
		err = cmdStatus(p)
	case "logs":
		err = cmdLogs(p, args)
	case "snapshot":
		err = cmdSnapshot(args)
	case "check":
		err = cmdCheck(args)
	case "images":
		if len(args) != 1 {
			err = fmt.Errorf("usage: rig images DIR")
			break
		}
		var out []string
		if out, err = buildImages(p, args[0], ""); err == nil {
			fmt.Println(strings.Join(out, "\n"))
		}
	case "load":
		err = cmdLoad(ctx, p, args)
	case "binaries":
		var bins Binaries
		if bins, err = ensureBinaries(p, log); err == nil {
			names := slices.Sorted(maps.Keys(bins))
			for _, name := range names {
				fmt.Printf("%s=%s\n", name, bins[name])
			}
		}
	case "push":
		err = cmdPush(ctx, args)
	case "serve-registry":
		err = cmdServeRegistry(args)
	case "subreaper":
		os.Exit(cmdSubreaper(args))
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		log("%v", err)
		os.Exit(1)
	}
}

func cmdUp(ctx context.Context, p Paths, args []string, logf func(string, ...any)) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	n := fs.Int("clusters", 3, "number of clusters")
	var images multiFlag
	fs.Var(&images, "image", "image tarball to import into every node (repeatable)")
	_ = fs.Parse(args)
	if *n < 1 || *n > 9 {
		return fmt.Errorf("-clusters must be between 1 and 9, not %d", *n)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("the rig needs root (network namespaces, cgroups, containerd): run it as root")
	}
	if _, err := os.Stat(p.State); err == nil {
		return fmt.Errorf("a rig is already up (or a previous one was not torn down) in %s: run `make clusters-down` first", p.State)
	}
	start := time.Now()
	bins, err := ensureBinaries(p, logf)
	if err != nil {
		return err
	}
	rigImages, err := buildRigImages(p, bins)
	if err != nil {
		return err
	}
	for _, img := range images {
		if _, err := os.Stat(img); err != nil {
			return fmt.Errorf("image %s: %w (build it with `make image`)", img, err)
		}
	}
	images = append(images, rigImages...)
	logf("binaries and images ready in %s", time.Since(start).Round(100*time.Millisecond))

	if err := os.MkdirAll(p.State, 0o755); err != nil {
		return err
	}
	if err := recordHostState(p.State, *n); err != nil {
		return err
	}
	// From here on, any failure leaves a rig that `down` can remove.
	err = bringUp(ctx, p, *n, bins, images, logf)
	if err != nil {
		return fmt.Errorf("%w\nthe rig is partly up: logs are in %s; remove it with `make clusters-down`", err, p.State)
	}
	logf("%d clusters up in %s", *n, time.Since(start).Round(100*time.Millisecond))
	fmt.Printf("kubeconfigs: %s\n  export KUBECONFIG=%s\n  kubectl %s: %s\n", p.KubeconfigDir(),
		filepath.Join(p.KubeconfigDir(), "all.yaml"), kubernetesVersion, filepath.Join(p.State, "bin", "kubectl"))
	for i := 1; i <= *n; i++ {
		fmt.Printf("  context rig-c%d: %s\n", i, filepath.Join(p.KubeconfigDir(), fmt.Sprintf("c%d.yaml", i)))
	}
	return nil
}

func bringUp(ctx context.Context, p Paths, n int, bins Binaries, images []string, logf func(string, ...any)) error {
	clusters := make([]Cluster, n)
	for i := range clusters {
		clusters[i] = newCluster(p.State, i+1)
	}
	if err := setupCgroups(clusters); err != nil {
		return err
	}
	if err := startSupervisor(p); err != nil {
		return err
	}
	sup, err := supervisorClient(p.State)
	if err != nil {
		return err
	}
	defer sup.Close()
	if err := setupBridge(); err != nil {
		return err
	}
	if err := startRegistry(ctx, p, sup); err != nil {
		return fmt.Errorf("the rig's registry: %w (see %s)", err, filepath.Join(p.State, "registry.log"))
	}
	if err := startSQS(ctx, p, sup); err != nil {
		return fmt.Errorf("the rig's SQS: %w (see %s)", err, filepath.Join(p.State, "sqs.log"))
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range clusters {
		g.Go(func() error { return upCluster(gctx, c, clusters, bins, images, sup, logf) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Tests use the kubectl of the rig's Kubernetes version, whatever the machine has.
	if err := os.MkdirAll(filepath.Join(p.State, "bin"), 0o755); err != nil {
		return err
	}
	if err := os.Symlink(bins["kubectl"], filepath.Join(p.State, "bin", "kubectl")); err != nil {
		return err
	}
	return writeKubeconfigs(p, clusters)
}

// startSupervisor starts `rig supervise` detached, in the rig's cgroup.
func startSupervisor(p Paths) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(p.State, "supervisor.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, "supervise")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join("/sys/fs/cgroup/pids", cgroupParent, "cgroup.procs"), []byte(fmt.Sprint(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	_ = cmd.Process.Release()
	return waitFor(context.Background(), 10*time.Second, "supervisor", func() error {
		c, err := supervisorClient(p.State)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// writeKubeconfigs writes one admin kubeconfig per cluster (context rig-cN) and all.yaml
// holding every context, the first current.
func writeKubeconfigs(p Paths, clusters []Cluster) error {
	if err := os.MkdirAll(p.KubeconfigDir(), 0o755); err != nil {
		return err
	}
	merged := clientcmdapi.NewConfig()
	for _, c := range clusters {
		cfg, err := clientcmd.LoadFromFile(filesOf(c).adminKubeconfig)
		if err != nil {
			return err
		}
		ctx := "rig-" + c.Name
		user := "rig-" + c.Name + "-admin"
		cfg.AuthInfos = map[string]*clientcmdapi.AuthInfo{user: cfg.AuthInfos["rig-admin"]}
		cfg.Contexts[ctx].AuthInfo = user
		if err := writeKubeconfig(filepath.Join(p.KubeconfigDir(), c.Name+".yaml"), cfg); err != nil {
			return err
		}
		merged.Clusters[ctx] = cfg.Clusters[ctx]
		merged.AuthInfos[user] = cfg.AuthInfos[user]
		merged.Contexts[ctx] = cfg.Contexts[ctx]
		if merged.CurrentContext == "" {
			merged.CurrentContext = ctx
		}
	}
	return writeKubeconfig(filepath.Join(p.KubeconfigDir(), "all.yaml"), merged)
}

func cmdStopStart(p Paths, verb string, args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: rig %s CLUSTER COMPONENT, e.g. rig %s c3 kube-apiserver", verb, verb)
	}
	sup, err := supervisorClient(p.State)
	if err != nil {
		return err
	}
	defer sup.Close()
	key := args[0] + "/" + args[1]
	if verb == "stop" {
		var stopped bool
		return sup.Call("Supervisor.Stop", StopRequest{Key: key, Timeout: 10 * time.Second}, &stopped)
	}
	var pid int
	return sup.Call("Supervisor.Start", ProcSpec{Key: key}, &pid)
}

func cmdStatus(p Paths) error {
	sup, err := supervisorClient(p.State)
	if err != nil {
		return err
	}
	defer sup.Close()
	var procs []ProcInfo
	if err := sup.Call("Supervisor.List", struct{}{}, &procs); err != nil {
		return err
	}
	for _, pr := range procs {
		state := "running"
		if !pr.Running {
			state = "stopped (" + pr.Exit + ")"
		}
		fmt.Printf("%-32s pid %-7d %s\n", pr.Spec.Key, pr.PID, state)
	}
	return nil
}

// cmdLoad imports image tarballs into the containerd of every running cluster, so a rebuilt
// image reaches the nodes without a new `up`.
func cmdLoad(ctx context.Context, p Paths, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: rig load IMAGE.tar...")
	}
	for i := 1; i <= 9; i++ {
		c := newCluster(p.State, i)
		if _, err := os.Stat(containerdSocket(c)); err != nil {
			continue
		}
		for _, img := range args {
			out, err := exec.CommandContext(ctx, "ctr", "--address", containerdSocket(c), "-n", "k8s.io", "images", "import", img).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s: import %s: %v: %s", c.Name, img, err, out)
			}
		}
	}
	return nil
}

// cmdLogs copies the component logs of every cluster into a directory.
func cmdLogs(p Paths, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: rig logs DIR")
	}
	matches, _ := filepath.Glob(filepath.Join(p.State, "c*", "logs", "*.log"))
	more, _ := filepath.Glob(filepath.Join(p.State, "*.log"))
	for _, m := range append(matches, more...) {
		rel, _ := filepath.Rel(p.State, m)
		dst := filepath.Join(args[0], strings.ReplaceAll(rel, "/logs/", "/"))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		b, err := os.ReadFile(m)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func cmdSnapshot(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: rig snapshot FILE")
	}
	s, err := takeSnapshot()
	if err != nil {
		return err
	}
	return writeSnapshot(s, args[0])
}

func cmdCheck(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: rig check BASELINE-FILE")
	}
	before, err := readSnapshot(args[0])
	if err != nil {
		return err
	}
	now, err := takeSnapshot()
	if err != nil {
		return err
	}
	left := leftovers(before, now)
	if len(left) > 0 {
		return fmt.Errorf("the rig left %d things behind:\n  %s", len(left), strings.Join(left, "\n  "))
	}
	fmt.Println("rig check: nothing left behind (processes, mounts, network namespaces, links, routes, cgroups, paths, nftables, sysctls)")
	return nil
}

// cmdSubreaper runs a command as a child subreaper: every process its descendants
// orphan (the rig's supervisor, say) re-parents here and is reaped, so nothing lingers
// as a zombie on machines whose init does not reap.
func cmdSubreaper(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: rig subreaper -- CMD [ARGS...]")
		return 2
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "rig subreaper:", err)
		return 1
	}
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM) // the child decides; we outlive it
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "rig subreaper:", err)
		return 127
	}
	code := 0
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.ECHILD {
			return code
		}
		if err != nil {
			continue
		}
		if pid == cmd.Process.Pid {
			code = ws.ExitStatus()
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		}
	}
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
