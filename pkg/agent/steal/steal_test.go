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
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/nstest"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
)

const helperEnv = "MIRRORD_STEAL_HELPER"

func TestMain(m *testing.M) {
	if pid := os.Getenv(helperEnv); pid != "" {
		// A stand-in agent for the SIGKILL test: steal the target's HTTP port, then wait.
		if err := helper(pid); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	nstest.Main(m)
}

func helper(pid string) error {
	ns, err := netns.Open("/proc/" + pid + "/ns/net")
	if err != nil {
		return err
	}
	s, err := Start(context.Background(), ns, "killed-session", func(c net.Conn, _ netip.AddrPort) { c.Close() })
	if err != nil {
		return err
	}
	if err := s.Steal(nstest.HTTPPort, false); err != nil {
		return err
	}
	fmt.Println("stealing")
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

func TestStealWholePort(t *testing.T) {
	tg, link, ns := targetWithClient(t)
	addr := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)
	if got := nstest.MustGet(t, link.Client, addr, "", "/a"); got != tg.Token+" GET /a" {
		t.Fatalf("before stealing: %q", got)
	}

	s, err := Start(t.Context(), ns, "mirrord-test", answer)
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
	pass, err := s.DialOriginal(t.Context(), netip.MustParseAddrPort(addr))
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
	if ts := tables(t, ns); len(ts) != 0 {
		t.Errorf("tables left after Close: %v", ts)
	}
	if n := redirectedEntries(t, ns); n != 0 {
		t.Errorf("%d conntrack entries of stolen connections left after Close", n)
	}
}

// TestSIGKILLLeavesNoRule kills a stealing process with SIGKILL: the kernel deletes its
// owned table at once and the target serves normally.
func TestSIGKILLLeavesNoRule(t *testing.T) {
	tg, link, ns := targetWithClient(t)
	addr := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", helperEnv, tg.PID))
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
	if strings.TrimSpace(line) != "stealing" {
		t.Fatalf("helper: %q", line)
	}
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
	next, err := Start(t.Context(), ns, "next", func(c net.Conn, _ netip.AddrPort) { c.Close() })
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	if n := redirectedEntries(t, ns); n != 0 {
		t.Errorf("%d conntrack entries of the killed agent left after the next one started", n)
	}
}
