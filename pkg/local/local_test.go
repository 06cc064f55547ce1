// Package local_test runs the whole local side (sandbox, netstack, outgoing, DNS, incoming)
// against an in-process session server: real namespaces, a real TUN, real nftables, and a
// static Go program as the command. The cluster side is covered by the e2e suite.
package local_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/fsmap"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/incoming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/netstack"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/outgoing"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/remotefs"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/sandbox"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// The "cluster" the fake session serves: one Service name and address.
const (
	svcName = "api.shop.svc.cluster.local."
	svcIP   = "10.96.7.7"
)

// remoteDirs are the target's volumes: paths this machine does not have (so the sandbox
// makes them in overlays: /etc and, through the /var/run symlink, /run).
var remoteDirs = []string{"/etc/mirrord-test-config", "/var/run/secrets/mirrord-test/serviceaccount"}

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sandbox.InitArg {
		sandbox.Init()
	}
	if os.Getenv("MIRRORD_TEST_COMMAND") == "1" {
		os.Exit(command())
	}
	if os.Getenv("MIRRORD_TEST_SERVE") == "1" { // a server for benchmarks, until killed
		_ = http.ListenAndServe("127.0.0.1:8080", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.RemoteAddr) }))
		os.Exit(3)
	}
	if dir := os.Getenv("MIRRORD_TEST_FSMAP"); dir != "" {
		os.Exit(fsmapCommand(dir))
	}
	if os.Getenv("MIRRORD_TEST_PARENT") == "1" {
		os.Exit(parent())
	}
	os.Exit(m.Run())
}

// command is what runs in the sandbox: it resolves and calls the Service, then answers one
// incoming request on :8080 (bound to 127.0.0.1, as development servers often are).
func command() int {
	ln, err := net.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		fmt.Println("listen:", err)
		return 3
	}
	fmt.Println("env:", os.Getenv("FROM_TARGET"))
	// The target's volumes, served through the session by FUSE.
	for _, dir := range remoteDirs {
		names, err := os.ReadDir(dir)
		fmt.Println("readdir:", dir, len(names), err)
		b, err := os.ReadFile(dir + "/greeting")
		fmt.Printf("file: %s %q %v\n", dir, b, err)
	}
	if err := os.WriteFile(remoteDirs[0]+"/new", []byte("x"), 0o644); err != nil {
		fmt.Println("write refused:", errors.Is(err, syscall.EROFS))
	}
	addrs, err := net.LookupHost("api") // the search list of the target's resolv.conf
	fmt.Println("lookup:", addrs, err)
	resp, err := http.Get("http://api:80/")
	if err != nil {
		fmt.Println("get:", err)
		return 4
	}
	b, _ := io.ReadAll(resp.Body)
	fmt.Println("get:", strings.TrimSpace(string(b)))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "local answer to %s from %s", r.URL.Path, r.RemoteAddr)
		go func() { time.Sleep(200 * time.Millisecond); ln.Close() }()
	})}
	_ = srv.Serve(ln)
	return 7
}

// fsmapCommand uses the files of dir that TestFSMapping maps, and says what it saw.
func fsmapCommand(dir string) int {
	read := func(p string) {
		b, err := os.ReadFile(p)
		fmt.Printf("read %s: %q %v\n", strings.TrimPrefix(p, dir), b, err)
	}
	read(dir + "/remote-config/greeting") // a mapped directory: the target's
	read(dir + "/opt/greeting")           // a mapped file in a directory made for the mount
	read(dir + "/app/settings.yaml")      // a mapped file in a directory of this machine
	read(dir + "/app/local.txt")          // its neighbour that no pattern maps: this machine's
	read(dir + "/app/sub/deep.conf")      // mapped, below a directory of this machine
	read(dir + "/app/missing.yaml")       // mapped to a path the target lacks
	names, err := os.ReadDir(dir + "/app")
	var listed []string
	for _, n := range names {
		listed = append(listed, n.Name())
	}
	fmt.Printf("readdir /app: %v %v\n", listed, err)
	err = os.WriteFile(dir+"/app/written.txt", []byte("by the command"), 0o644)
	fmt.Printf("write /app/written.txt: %v\n", err)
	err = os.WriteFile(dir+"/app/new.yaml", []byte("x"), 0o644)
	fmt.Printf("write /app/new.yaml: %v\n", errors.Is(err, syscall.EROFS))
	var st syscall.Stat_t
	err = syscall.Stat(dir+"/app/local.txt", &st)
	fmt.Printf("owner /app/local.txt: %d %v\n", st.Uid, err)
	return 0
}

// parent starts a sandboxed sleep, says its pid, and waits to be killed.
func parent() int {
	sb, err := sandbox.Start(sandbox.Options{Command: []string{"/bin/sh", "-c", "exec sleep 300"}, Env: []string{"PATH=/usr/bin:/bin"}, Incoming: true})
	if err != nil {
		fmt.Println("start:", err)
		return 1
	}
	go func() { _, _ = sb.Run() }()
	// This process's children but the command: the sandbox's socket supplier.
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	var others []string
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, pid := range strings.Fields(string(b)) {
			if pid != strconv.Itoa(sb.PID()) {
				others = append(others, pid)
			}
		}
	}
	fmt.Println("pid", sb.PID(), "others", strings.Join(others, ","))
	select {}
}

// fakeSession serves the protocol the way the Primary would.
func fakeSession(t *testing.T, cluster string, incomingAnswer chan<- string) *protocol.Client {
	return fakeSessionIn(t, t.TempDir(), cluster, incomingAnswer)
}

// fakeSessionIn is fakeSession with the target's files in volumes, a directory of this
// machine (the fake agent translates).
func fakeSessionIn(t *testing.T, volumes, cluster string, incomingAnswer chan<- string) *protocol.Client {
	for i, dir := range remoteDirs {
		d := volumes + dir
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(d+"/greeting", []byte(fmt.Sprintf("hello from volume %d", i)), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, sess, err := protocol.Accept(c, nil)
		if err != nil {
			return
		}
		for {
			st, err := sess.AcceptStream()
			if err != nil {
				return
			}
			go func() {
				defer st.Close()
				var req protocol.Request
				if protocol.ReadMessage(st, &req) != nil {
					return
				}
				switch req.Op {
				case protocol.OpMounts:
					var ms []protocol.Mount
					for _, d := range remoteDirs {
						ms = append(ms, protocol.Mount{Path: d, Dir: true})
					}
					_ = protocol.WriteMessage(st, protocol.Response{Mounts: ms})
				case protocol.OpStat, protocol.OpReadDir, protocol.OpOpen:
					serveFile(st, volumes+req.Path, req)
				case protocol.OpReadlink:
					link, err := os.Readlink(volumes + req.Path)
					if err != nil {
						_ = protocol.WriteMessage(st, protocol.Response{Error: err.Error(), Errno: int(syscall.EINVAL)})
						return
					}
					_ = protocol.WriteMessage(st, protocol.Response{Link: link})
				case protocol.OpDNS:
					_ = protocol.WriteMessage(st, protocol.Response{Data: answer(req.Data)})
				case protocol.OpDial:
					if req.Address != svcIP+":80" {
						_ = protocol.WriteMessage(st, protocol.Response{Error: "connection refused", Errno: 111})
						return
					}
					up, err := net.Dial("tcp", cluster)
					if err != nil {
						_ = protocol.WriteMessage(st, protocol.Response{Error: err.Error()})
						return
					}
					_ = protocol.WriteMessage(st, protocol.Response{})
					go func() { _, _ = io.Copy(up, st) }()
					_, _ = io.Copy(st, up)
				case protocol.OpIncoming:
					_ = protocol.WriteMessage(st, protocol.Response{})
					// Until the command listens, the local side answers 502: retry as a client would.
					for range 100 {
						d, err := sess.OpenStream()
						if err != nil {
							return
						}
						_ = protocol.WriteMessage(d, protocol.Incoming{Kind: protocol.IncomingRequest, Client: "10.244.1.9:40000", Server: "10.244.2.3:8080"})
						_, _ = io.WriteString(d, "GET /stolen HTTP/1.1\r\nHost: api\r\n\r\n")
						resp, err := http.ReadResponse(bufio.NewReader(d), nil)
						if err != nil {
							d.Close()
							return
						}
						b, _ := io.ReadAll(resp.Body)
						d.Close()
						if resp.StatusCode != http.StatusBadGateway {
							incomingAnswer <- string(b)
							break
						}
						time.Sleep(50 * time.Millisecond)
					}
					_, _ = io.Copy(io.Discard, st)
				default:
					_ = protocol.WriteMessage(st, protocol.Response{Error: "not served here"})
				}
			}()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sess, err := protocol.Dial(c, protocol.Hello{Session: "test/s"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return protocol.NewClient(sess)
}

// serveFile answers file operations on path as the agent does (stat, readdir, and reads of
// an open file).
func serveFile(st io.ReadWriter, path string, req protocol.Request) {
	fail := func(err error) {
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			errno = syscall.EIO
		}
		_ = protocol.WriteMessage(st, protocol.Response{Error: err.Error(), Errno: int(errno)})
	}
	var s syscall.Stat_t
	if err := syscall.Lstat(path, &s); err != nil {
		fail(err)
		return
	}
	stat := &protocol.Stat{Mode: s.Mode, Size: s.Size, Nlink: uint64(s.Nlink), Ino: s.Ino, Mtime: s.Mtim.Nano()}
	switch req.Op {
	case protocol.OpStat:
		_ = protocol.WriteMessage(st, protocol.Response{Stat: stat})
	case protocol.OpReadDir:
		entries, err := os.ReadDir(path)
		if err != nil {
			fail(err)
			return
		}
		var out []protocol.DirEntry
		for _, e := range entries {
			out = append(out, protocol.DirEntry{Name: e.Name(), Type: e.Type()})
		}
		_ = protocol.WriteMessage(st, protocol.Response{Entries: out})
	case protocol.OpOpen:
		b, err := os.ReadFile(path)
		if err != nil {
			fail(err)
			return
		}
		_ = protocol.WriteMessage(st, protocol.Response{})
		for {
			var op protocol.FileOp
			if protocol.ReadMessage(st, &op) != nil {
				return
			}
			switch op.Op {
			case "read":
				end := min(int(op.Offset)+op.Length, len(b))
				_ = protocol.WriteMessage(st, protocol.Response{Data: b[min(int(op.Offset), end):end]})
			case "stat":
				_ = protocol.WriteMessage(st, protocol.Response{Stat: stat})
			default:
				_ = protocol.WriteMessage(st, protocol.Response{Error: "read-only", Errno: int(syscall.EROFS)})
			}
		}
	}
}

// answer resolves svcName to svcIP, anything else to NXDOMAIN.
func answer(q []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	question, _ := p.Question()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RecursionAvailable: true})
	_ = b.StartQuestions()
	_ = b.Question(question)
	_ = b.StartAnswers()
	if question.Name.String() == svcName && question.Type == dnsmessage.TypeA {
		ip := netip.MustParseAddr(svcIP).As4()
		_ = b.AResource(dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 5}, dnsmessage.AResource{A: ip})
	} else if question.Name.String() != svcName {
		b = dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RCode: dnsmessage.RCodeNameError})
		_ = b.StartQuestions()
		_ = b.Question(question)
	}
	out, _ := b.Finish()
	return out
}

// TestSandboxThroughSession runs the command with each way of delivering its incoming
// connections: kernel sockets made in its namespace (the default) and the netstack (where
// the namespace cannot route them back).
func TestSandboxThroughSession(t *testing.T) {
	if err := sandbox.Supported(); err != nil {
		t.Skip(err)
	}
	for _, delivery := range []string{"kernel", "netstack"} {
		t.Run(delivery, func(t *testing.T) { sandboxThroughSession(t, delivery) })
	}
}

func sandboxThroughSession(t *testing.T, delivery string) {
	cluster := httpServer(t, "hello from the cluster")
	answers := make(chan string, 1)
	client := fakeSession(t, cluster, answers)
	h := &outgoing.Handler{Remote: client, TCP: true, UDP: true, DNS: true, DNSAddr: netip.MustParseAddr(sandbox.DNSIP)}
	self, _ := os.Executable()
	var out strings.Builder
	sb, err := sandbox.Start(sandbox.Options{
		RemoteDirs: remoteDirs,
		Command:    []string{self},
		Env:        []string{"MIRRORD_TEST_COMMAND=1", "FROM_TARGET=yes"},
		ResolvConf: outgoing.SandboxResolvConf([]byte("nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local\noptions ndots:5\n"), h.DNSAddr),
		Incoming:   true,
		Stdout:     &out, Stderr: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sb.Remote) != len(remoteDirs) {
		sb.Kill()
		t.Fatalf("mounted %d remote directories, skipped %v", len(sb.Remote), sb.Skipped)
	}
	for _, rd := range sb.Remote {
		_, err := remotefs.Serve(rd.Device, client, rd.Path, false)
		rd.Device.Close()
		if err != nil {
			sb.Kill()
			t.Fatal(err)
		}
	}
	st, err := netstack.New(sb.TUN, h)
	if err != nil {
		sb.Kill()
		t.Fatal(err)
	}
	defer st.Close()
	sub, err := client.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	var dialer incoming.Dialer = st
	if delivery == "kernel" {
		if sb.Delivery == nil {
			sb.Kill()
			t.Fatalf("no kernel delivery: %s", sb.NoDelivery)
		}
		dialer = sb.Delivery
	}
	d := &incoming.Deliverer{Dialer: dialer, Target: netip.MustParseAddr(sandbox.ChildIP)}
	go func() { _ = d.Serve(context.Background(), sub) }()
	code, err := sb.Run()
	t.Logf("command output:\n%s", out.String())
	if err != nil || code != 7 {
		t.Fatalf("exit %d, %v", code, err)
	}
	for _, want := range []string{"env: yes", "lookup: [" + svcIP + "]", "get: hello from the cluster",
		"readdir: /etc/mirrord-test-config 1 <nil>", `file: /etc/mirrord-test-config "hello from volume 0" <nil>`,
		`file: /var/run/secrets/mirrord-test/serviceaccount "hello from volume 1" <nil>`, "write refused: true"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	select {
	case a := <-answers:
		if a != "local answer to /stolen from 10.244.1.9:40000" {
			t.Errorf("incoming answer %q", a)
		}
	case <-time.After(5 * time.Second):
		t.Error("the incoming request was not answered")
	}
}

// TestFSMapping runs a command with feature.fs.mapping through local.Run: a mapped directory
// and a mapped file are the target's, the files around them stay this machine's (read and
// written through the mount), and no file of this machine is changed but the one written.
func TestFSMapping(t *testing.T) {
	if err := sandbox.Supported(); err != nil {
		t.Skip(err)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(dir+"/app/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/app/local.txt", []byte("this machine's"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := fsmap.New(map[string]string{
		"^" + dir + "/remote-config":              remoteDirs[0],
		"^" + dir + "/opt/(.+)":                   remoteDirs[0] + "/$1",       // /opt is not on this machine, nor mapped itself
		"^" + dir + `/app/sub/[a-z]+\.conf$`:      remoteDirs[1] + "/settings", // served by /app's mount
		"^" + dir + `/app/(?<name>[a-z]+)\.yaml$`: remoteDirs[1] + "/${name}",
	})
	if err != nil {
		t.Fatal(err)
	}
	volumes := t.TempDir()
	client := fakeSessionIn(t, volumes, httpServer(t, "unused"), make(chan string, 1))
	// The target's file a pattern maps to, beside the volumes' greetings: a link into ..data,
	// as the kubelet makes a ConfigMap's files.
	if err := os.MkdirAll(volumes+remoteDirs[1]+"/..data", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(volumes+remoteDirs[1]+"/..data/settings", []byte("the target's settings"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/settings", volumes+remoteDirs[1]+"/settings"); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	var out strings.Builder
	spec := &mirrordv1alpha1.MirrordSessionSpec{}
	spec.Features.Env.Disabled, spec.Features.Network.DNS.Disabled = true, true
	spec.Features.Network.Incoming.Mode = mirrordv1alpha1.IncomingModeOff
	t.Setenv("MIRRORD_TEST_FSMAP", dir)
	code, err := local.Run(context.Background(), client, spec, local.Options{
		Command: []string{self}, FSMapping: m, Out: &out, ErrOut: &out, StartedAt: time.Now(),
		Logf: func(f string, a ...any) { fmt.Fprintf(&out, "mirrord: "+f+"\n", a...) },
	})
	t.Logf("command output:\n%s", out.String())
	if err != nil || code != 0 {
		t.Fatalf("exit %d, %v", code, err)
	}
	for _, want := range []string{
		`read /remote-config/greeting: "hello from volume 0" <nil>`,
		`read /opt/greeting: "hello from volume 0" <nil>`,
		`read /app/settings.yaml: "the target's settings" <nil>`,
		`read /app/local.txt: "this machine's" <nil>`,
		`read /app/sub/deep.conf: "the target's settings" <nil>`,
		`read /app/missing.yaml: "" open ` + dir + `/app/missing.yaml: no such file or directory`,
		"readdir /app: [local.txt sub] <nil>",
		"write /app/written.txt: <nil>",
		"write /app/new.yaml: true",
		"owner /app/local.txt: 0 <nil>",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if b, err := os.ReadFile(dir + "/app/written.txt"); string(b) != "by the command" {
		t.Errorf("this machine's %s/app/written.txt: %q, %v", dir, b, err)
	}
	for _, made := range []string{"/remote-config", "/opt"} {
		if _, err := os.Stat(dir + made); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the mount point %s was made on this machine: %v", made, err)
		}
	}
}

// TestKill9LeavesNoCommand: when kubectl mirrord is killed with SIGKILL, the command and the
// sandbox's socket supplier die too.
func TestKill9LeavesNoCommand(t *testing.T) {
	if err := sandbox.Supported(); err != nil {
		t.Skip(err)
	}
	self, _ := os.Executable()
	for i := range 5 {
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), "MIRRORD_TEST_PARENT=1")
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var pid int
		var others string
		if _, err := fmt.Fscanf(out, "pid %d others %s\n", &pid, &others); err != nil {
			t.Fatal(err)
		}
		supplier, err := strconv.Atoi(others)
		if err != nil {
			t.Fatalf("run %d: the CLI has children %q besides the command, want one: the socket supplier", i, others)
		}
		time.Sleep(time.Duration(i*50) * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		for what, pid := range map[string]int{"the command": pid, "the socket supplier": supplier} {
			deadline := time.Now().Add(2 * time.Second)
			for syscall.Kill(pid, 0) == nil && !zombie(pid) {
				if time.Now().After(deadline) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					t.Fatalf("run %d: %s (pid %d) outlived its kill -9'd parent", i, what, pid)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// zombie says whether pid has exited and waits to be reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(after, "Z")
}

func httpServer(t *testing.T, body string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, body) })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
