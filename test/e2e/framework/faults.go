package framework

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
)

// Front is a TCP relay on this machine's loopback in front of a cluster's API server, for a
// client whose network the test wants to cut: Drop closes every connection through it and
// refuses new ones for a while, as a laptop changing networks would see.
type Front struct {
	// Kubeconfig is the cluster's kubeconfig, pointed at the front.
	Kubeconfig string

	ln       net.Listener
	upstream string

	mu        sync.Mutex
	conns     map[net.Conn]bool
	downUntil time.Time
}

// NewFront starts a front for c; the test's end stops it.
func (f *Framework) NewFront(c *Cluster) *Front {
	f.t.Helper()
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil || cfg.Clusters[ctx.Cluster] == nil {
		f.t.Fatalf("%s: no current context", c.Kubeconfig)
	}
	u, err := url.Parse(cfg.Clusters[ctx.Cluster].Server)
	if err != nil {
		f.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	fr := &Front{ln: ln, upstream: u.Host, conns: map[net.Conn]bool{}}
	// The API server's certificate names 127.0.0.1 too (the rig's do; kind's name localhost).
	cfg.Clusters[ctx.Cluster].Server = "https://" + ln.Addr().String()
	fr.Kubeconfig = filepath.Join(f.t.TempDir(), c.Name+"-front.yaml")
	if err := clientcmd.WriteToFile(*cfg, fr.Kubeconfig); err != nil {
		f.t.Fatal(err)
	}
	go fr.serve()
	f.t.Cleanup(func() { ln.Close(); fr.closeAll() })
	return fr
}

func (fr *Front) serve() {
	for {
		c, err := fr.ln.Accept()
		if err != nil {
			return
		}
		fr.mu.Lock()
		down := time.Now().Before(fr.downUntil)
		if !down {
			fr.conns[c] = true
		}
		fr.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		go fr.relay(c)
	}
}

func (fr *Front) relay(c net.Conn) {
	defer fr.forget(c)
	up, err := net.DialTimeout("tcp", fr.upstream, 5*time.Second)
	if err != nil {
		return
	}
	fr.mu.Lock()
	if !fr.conns[c] { // dropped while dialling
		fr.mu.Unlock()
		up.Close()
		return
	}
	fr.conns[up] = true
	fr.mu.Unlock()
	defer fr.forget(up)
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
}

func (fr *Front) forget(c net.Conn) {
	fr.mu.Lock()
	delete(fr.conns, c)
	fr.mu.Unlock()
	c.Close()
}

func (fr *Front) closeAll() {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	for c := range fr.conns {
		c.Close()
	}
	clear(fr.conns)
}

// Drop cuts every connection through the front and refuses new ones for d.
func (fr *Front) Drop(d time.Duration) {
	fr.mu.Lock()
	fr.downUntil = time.Now().Add(d)
	fr.mu.Unlock()
	fr.closeAll()
}

// PodProcesses are the host PIDs of pod's containers' processes (the local rig runs every
// cluster's containers on this machine), found by the pod's cgroup; the sandbox's pause
// process is left out.
func PodProcesses(pod *corev1.Pod) ([]int, error) {
	marks := []string{"pod" + string(pod.UID) + "/", "pod" + strings.ReplaceAll(string(pod.UID), "-", "_") + "."}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil || !containsAny(string(cg), marks) {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.HasPrefix(string(cmd), "/pause\x00") {
			continue
		}
		pids = append(pids, pid)
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("no processes of pod %s/%s on this machine", pod.Namespace, pod.Name)
	}
	return pids, nil
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// KillPod sends SIGKILL to every process of pod's containers, as the OOM killer or a crash
// would end them.
func KillPod(pod *corev1.Pod) error {
	pids, err := PodProcesses(pod)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			return err
		}
	}
	return nil
}

// NetnsTables lists the nftables tables in pod's network namespace.
func NetnsTables(pod *corev1.Pod) ([]string, error) {
	pids, err := PodProcesses(pod)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("nsenter", "-t", strconv.Itoa(pids[0]), "-n", "nft", "list", "tables").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("nft list tables in %s: %v: %s", pod.Name, err, out)
	}
	var tables []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" {
			tables = append(tables, strings.TrimPrefix(line, "table "))
		}
	}
	return tables, nil
}

// StopAPIServer stops cluster's API server on the local rig and returns the func that starts
// it again (which the test's end calls too, if the test did not).
func (f *Framework) StopAPIServer(cluster string) (start func()) {
	f.t.Helper()
	if out, err := exec.Command(Rig(), "stop", cluster, "kube-apiserver").CombinedOutput(); err != nil {
		f.t.Fatalf("stopping %s's API server: %v: %s", cluster, err, out)
	}
	var once sync.Once
	start = func() {
		once.Do(func() {
			if out, err := exec.Command(Rig(), "start", cluster, "kube-apiserver").CombinedOutput(); err != nil {
				f.t.Errorf("starting %s's API server: %v: %s", cluster, err, out)
			}
		})
	}
	f.t.Cleanup(start)
	return start
}
