package steal

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/nstest"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
)

const (
	helperEnv    = "MIRRORD_STEAL_HELPER"
	backendEnv   = "MIRRORD_STEAL_HELPER_BACKEND"
	superviseEnv = "MIRRORD_STEAL_HELPER_SUPERVISE"
	filteredEnv  = "MIRRORD_STEAL_HELPER_FILTERED" // steal as a filtered session, which may share the port
)

// backends are the ways to redirect; the tests that say so run with each.
var backends = []Backend{NFTables, IPTablesLegacy, IPTablesNFT}

func forEachBackend(t *testing.T, test func(t *testing.T, b Backend)) {
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) { test(t, b) })
	}
}

func TestMain(m *testing.M) {
	if pid := os.Getenv(helperEnv); pid != "" {
		// A stand-in agent for the SIGKILL tests: steal the target's HTTP port, then wait;
		// under a supervisor when asked.
		if os.Getenv(superviseEnv) != "" {
			child := exec.Command(os.Args[0], os.Args[1:]...)
			child.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, superviseEnv+"=") })
			child.Stdout, child.Stderr = os.Stdout, os.Stderr
			_ = Supervise(child)
			os.Exit(0)
		}
		if err := helper(pid, Backend(os.Getenv(backendEnv))); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	nstest.Main(m)
}

func helper(pid string, backend Backend) error {
	ns, err := netns.Open("/proc/" + pid + "/ns/net")
	if err != nil {
		return err
	}
	s, err := Start(context.Background(), ns, backend, "killed-session", func(c net.Conn, _ netip.AddrPort) { c.Close() })
	if err != nil {
		return err
	}
	if err := s.Steal(nstest.HTTPPort, os.Getenv(filteredEnv) != ""); err != nil {
		return err
	}
	fmt.Println("stealing", os.Getpid())
	select {}
}

// answer serves every stolen connection with one HTTP answer naming the original port.
func answer(c net.Conn, orig netip.AddrPort) {
	defer c.Close()
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	body := fmt.Sprintf("stolen %s %d", req.URL.Path, orig.Port())
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}

func tables(t *testing.T, ns *netns.Handle) []string {
	t.Helper()
	conn, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := conn.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range ts {
		names = append(names, tb.Name)
	}
	return names
}

// targetWithClient starts a fake target, links a client namespace to it, and opens the
// target's network namespace (closed when the test ends).
// leftovers lists what a steal may leave in ns: mirrord's nftables tables, and iptables nat
// rules and chains of either iptables backend naming a slot chain.
func leftovers(t *testing.T, ns *netns.Handle) []string {
	t.Helper()
	var out []string
	for _, name := range tables(t, ns) {
		if strings.HasPrefix(name, "mirrord") {
			out = append(out, "nftables table "+name)
		}
	}
	for _, b := range []Backend{IPTablesLegacy, IPTablesNFT} {
		v4, v6 := binaries(b)
		for _, bin := range []string{v4, v6} {
			listing, err := xtables{ns, bin}.run("-S")
			if err != nil {
				continue
			}
			for line := range strings.Lines(listing) {
				if strings.Contains(line, chainPrefix) {
					out = append(out, bin+": "+strings.TrimSpace(line))
				}
			}
		}
	}
	return out
}

func targetWithClient(t *testing.T) (*nstest.Target, *nstest.Link, *netns.Handle) {
	t.Helper()
	tg := nstest.Start(t, nstest.Options{})
	link := nstest.Connect(t, tg)
	ns, err := netns.OfPID("/proc", tg.PID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return tg, link, ns
}

// redirectedEntries counts the conntrack entries of connections a redirect sent elsewhere.
func redirectedEntries(t *testing.T, ns *netns.Handle) int {
	t.Helper()
	h, err := netlink.NewHandleAt(vnetns.NsHandle(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	n := 0
	for _, fam := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		flows, err := h.ConntrackTableList(netlink.ConntrackTable, fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range flows {
			if (redirectedTo{other: true}).MatchConntrackFlow(f) {
				n++
			}
		}
	}
	return n
}

func TestStealWholePort(t *testing.T) { forEachBackend(t, testStealWholePort) }

func testStealWholePort(t *testing.T, backend Backend) {
	tg, link, ns := targetWithClient(t)
	addr := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)
	if got := nstest.MustGet(t, link.Client, addr, "", "/a"); got != tg.Token+" GET /a" {
		t.Fatalf("before stealing: %q", got)
	}

	s, err := Start(t.Context(), ns, backend, "mirrord-test", answer)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Steal(nstest.HTTPPort, false); err != nil {
		t.Fatal(err)
	}
	if got := nstest.MustGet(t, link.Client, addr, "", "/b"); got != fmt.Sprintf("stolen /b %d", nstest.HTTPPort) {
		t.Errorf("from another pod: %q", got)
	}
	// From inside the pod, to its own addresses: the OUTPUT chain.
	if got := nstest.MustGet(t, ns, addr, "", "/c"); got != fmt.Sprintf("stolen /c %d", nstest.HTTPPort) {
		t.Errorf("from inside the pod: %q", got)
	}
	if got := nstest.MustGet(t, ns, fmt.Sprintf("127.0.0.1:%d", nstest.HTTPPort), "", "/d"); got != fmt.Sprintf("stolen /d %d", nstest.HTTPPort) {
		t.Errorf("from inside the pod to localhost: %q", got)
	}
	// The agent's own connections to the original port go through: nothing loops.
	pass, err := s.DialOriginal(t.Context(), netip.MustParseAddrPort(addr), "198.51.100.7:4000")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(pass, "GET /through HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	b, _ := io.ReadAll(pass)
	pass.Close()
	if !strings.Contains(string(b), tg.Token+" GET /through") {
		t.Errorf("passthrough reached %q, want the target", b)
	}

	// A live stolen connection survives Release; new connections reach the target again.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	live, err := link.Client.Dial(ctx, "tcp", addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Release(nstest.HTTPPort); err != nil {
		t.Fatal(err)
	}
	// Long enough for the kernel to have let go of what the removed rules held.
	time.Sleep(100 * time.Millisecond)
	fmt.Fprintf(live, "GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(live), nil)
	if err != nil {
		t.Fatalf("the stolen connection broke on release: %v", err)
	}
	b, _ = io.ReadAll(resp.Body)
	live.Close()
	if string(b) != fmt.Sprintf("stolen /live %d", nstest.HTTPPort) {
		t.Errorf("live connection after release: %q", b)
	}
	if got := nstest.MustGet(t, link.Client, addr, "", "/e"); got != tg.Token+" GET /e" {
		t.Errorf("after release: %q", got)
	}

	if n := redirectedEntries(t, ns); n == 0 {
		t.Fatal("no conntrack entry of a stolen connection: the cleanup check below proves nothing")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, ns); len(left) != 0 {
		t.Errorf("left after Close: %q", left)
	}
	if n := redirectedEntries(t, ns); n != 0 {
		t.Errorf("%d conntrack entries of stolen connections left after Close", n)
	}
}

// TestStealExcept: a whole-port steal that leaves an address out (the node's, for the
// kubelet's probes) lets that address's connections reach the target and takes the rest; it
// leaves nothing behind.
func TestStealExcept(t *testing.T) { forEachBackend(t, testStealExcept) }

func testStealExcept(t *testing.T, backend Backend) {
	tg, link, ns := targetWithClient(t)
	addr := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)
	s, err := Start(t.Context(), ns, backend, "mirrord-test", answer)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// An IPv6 address too: each family gets the exceptions of its own.
	except := []netip.Addr{netip.MustParseAddr(link.ClientIP), netip.MustParseAddr("2001:db8::1")}
	if err := s.StealExcept(nstest.HTTPPort, false, except); err != nil {
		t.Fatal(err)
	}
	if got := nstest.MustGet(t, link.Client, addr, "", "/probe"); got != tg.Token+" GET /probe" {
		t.Errorf("from the excepted address: %q, want the target's answer", got)
	}
	if got := nstest.MustGet(t, ns, addr, "", "/other"); got != fmt.Sprintf("stolen /other %d", nstest.HTTPPort) {
		t.Errorf("from another address: %q, want it stolen", got)
	}
	if err := s.Release(nstest.HTTPPort); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, ns); len(left) != 0 {
		t.Errorf("left after Close: %q", left)
	}
}

// TestSIGKILLLeavesNoRule kills a stealing process with SIGKILL: the kernel deletes its
// owned table at once and the target serves normally.
func TestSIGKILLLeavesNoRule(t *testing.T) {
	tg, link, ns := targetWithClient(t)
	addr := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)

	cmd, _ := startHelper(t, tg.PID, NFTables, false)
	if ts := tables(t, ns); len(ts) != 1 || ts[0] != "mirrord-steal-01" {
		t.Fatalf("tables while stealing: %v", ts)
	}
	// A connection the helper steals (and closes at once), leaving a conntrack entry.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if c, err := link.Client.Dial(ctx, "tcp", addr, nil); err == nil {
		_, _ = c.Read(make([]byte, 1))
		c.Close()
	}
	start := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for len(tables(t, ns)) != 0 {
		if time.Since(start) > time.Second {
			t.Fatalf("table still there %s after SIGKILL: %v", time.Since(start), tables(t, ns))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := nstest.MustGet(t, link.Client, addr, "", "/after"); got != tg.Token+" GET /after" {
		t.Errorf("after the agent's SIGKILL the target answers %q", got)
	}
	t.Logf("table gone and target serving %s after SIGKILL", time.Since(start).Round(time.Millisecond))

	// The dead agent's conntrack entries outlive it; the next agent's start sweeps them.
	if n := redirectedEntries(t, ns); n == 0 {
		t.Fatal("the killed agent left no conntrack entry: the sweep check proves nothing")
	}
	next, err := Start(t.Context(), ns, NFTables, "next", func(c net.Conn, _ netip.AddrPort) { c.Close() })
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	if n := redirectedEntries(t, ns); n != 0 {
		t.Errorf("%d conntrack entries of the killed agent left after the next one started", n)
	}
}

// startHelper starts a stand-in agent stealing the target's HTTP port with backend, under a
// supervisor when asked; it returns the started process and the agent's PID (the
// supervisor's child, when supervised).
func startHelper(t *testing.T, targetPID int, backend Backend, supervise bool, env ...string) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", helperEnv, targetPID), backendEnv+"="+string(backend))
	cmd.Env = append(cmd.Env, env...)
	if supervise {
		cmd.Env = append(cmd.Env, superviseEnv+"=1")
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	var pid int
	if _, err := fmt.Sscanf(line, "stealing %d", &pid); err != nil {
		t.Fatalf("helper: %q", line)
	}
	return cmd, pid
}

// TestIPTablesAgentKilled: nothing removes an iptables backend's rules with a killed agent.
// Its supervisor removes them at once; when the supervisor died too, the next agent's start
// does.
func TestIPTablesAgentKilled(t *testing.T) {
	for _, backend := range []Backend{IPTablesLegacy, IPTablesNFT} {
		t.Run(string(backend), func(t *testing.T) {
			tg, link, ns := targetWithClient(t)
			addr := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)
			serving := func() bool {
				body, err := nstest.Get(link.Client, addr, "", "/", time.Second)
				return err == nil && strings.HasPrefix(body, tg.Token)
			}

			// The agent under its supervisor is killed.
			supervisor, agentPID := startHelper(t, tg.PID, backend, true)
			if len(leftovers(t, ns)) == 0 || serving() {
				t.Fatalf("the helper does not steal: %q", leftovers(t, ns))
			}
			start := time.Now()
			if err := syscall.Kill(agentPID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			for left := leftovers(t, ns); len(left) != 0 || !serving(); left = leftovers(t, ns) {
				if time.Since(start) > 2*time.Second {
					t.Fatalf("%s after the agent's SIGKILL: left %q, target serving %v", time.Since(start), left, serving())
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("rules gone and target serving %s after the agent's SIGKILL", time.Since(start).Round(time.Millisecond))
			if err := supervisor.Wait(); err != nil {
				t.Errorf("supervisor: %v", err)
			}

			// A supervisor removes its agent's chain only: not the slot another agent holds,
			// which its agent found taken (and reported) before it took the next one.
			other, _ := startHelper(t, tg.PID, backend, false, filteredEnv+"=1")
			_, second := startHelper(t, tg.PID, backend, true, filteredEnv+"=1")
			if err := syscall.Kill(second, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			start = time.Now()
			for left := strings.Join(leftovers(t, ns), "\n"); strings.Contains(left, chainPrefix+"02"); left = strings.Join(leftovers(t, ns), "\n") {
				if time.Since(start) > 2*time.Second {
					t.Fatalf("the killed second agent's chain is still there:\n%s", left)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if left := strings.Join(leftovers(t, ns), "\n"); !strings.Contains(left, "-N "+chainPrefix+"01") || serving() {
				t.Fatalf("the first agent's slot went with the second agent:\n%s", left)
			}
			_ = other.Process.Kill()
			_ = other.Wait()

			// An agent without a supervisor (as after a kill of the whole container).
			orphan, _ := startHelper(t, tg.PID, backend, false)
			_ = orphan.Process.Kill()
			_ = orphan.Wait()
			if len(leftovers(t, ns)) == 0 || serving() {
				t.Fatalf("the killed helper left nothing: the sweep check proves nothing")
			}
			next, err := Start(t.Context(), ns, backend, "next", func(c net.Conn, _ netip.AddrPort) { c.Close() })
			if err != nil {
				t.Fatal(err)
			}
			defer next.Close()
			if next.Slot() != 1 || !serving() {
				t.Errorf("after the next agent's start: slot %d, target serving %v, left %q", next.Slot(), serving(), leftovers(t, ns))
			}
		})
	}
}
