// Package nstest starts fake target processes for tests of the agent's data plane: each runs
// in a fresh network namespace of its own (nothing it serves is reachable from the test's
// namespace), chrooted into a directory the test fills, with an HTTP server, a UDP echo
// server and a DNS server on its own loopback. A test package calls Main from TestMain.
package nstest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/dns/dnsmessage"
)

const roleEnv = "MIRRORD_NSTEST_TARGET"

// The target's servers: HTTP on every address of its namespace, the rest on its 127.0.0.1.
const (
	HTTPPort = 8080
	UDPPort  = 9090
)

// Options shape a target.
type Options struct {
	// Env is the target's environment.
	Env map[string]string
	// Files are written under the target's root (path relative to it => content).
	Files map[string]string
	// Symlinks are made under the target's root (path => link text).
	Symlinks map[string]string
	// DNS maps fully qualified names ("api.demo.svc.cluster.local.") to IPv4 addresses the
	// target's DNS server answers with; /etc/resolv.conf points at that server.
	DNS map[string]string
}

// Target is a running fake target.
type Target struct {
	PID int
	// Root is the directory the target is chrooted into.
	Root string
	// Token is in every HTTP answer of the target, so a test knows it reached this one.
	Token string
}

type config struct {
	Root  string            `json:"root"`
	Token string            `json:"token"`
	DNS   map[string]string `json:"dns"`
}

// Main runs the fake target when this process is one, else the tests.
func Main(m *testing.M) {
	if raw := os.Getenv(roleEnv); raw != "" {
		if err := runTarget(raw); err != nil {
			fmt.Fprintln(os.Stderr, "nstest target:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Start starts a target; it is killed when the test ends. Tests that use it need root.
func Start(t *testing.T, opts Options) *Target {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	root := t.TempDir()
	files := map[string]string{"etc/resolv.conf": "nameserver 127.0.0.1\nsearch demo.svc.cluster.local svc.cluster.local\noptions ndots:5\n"}
	for p, c := range opts.Files {
		files[p] = c
	}
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, link := range opts.Symlinks {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(link, full); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config{Root: root, Token: fmt.Sprintf("target-%d", time.Now().UnixNano()), DNS: opts.DNS}
	raw, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{roleEnv + "=" + string(raw)}
	for k, v := range opts.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("target did not start: %q %v", line, err)
	}
	return &Target{PID: cmd.Process.Pid, Root: root, Token: cfg.Token}
}

func runTarget(raw string) error {
	var cfg config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		return err
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return err
	}
	hl, err := net.Listen("tcp", fmt.Sprintf(":%d", HTTPPort))
	if err != nil {
		return err
	}
	// HTTP/1 and cleartext HTTP/2 (h2c with prior knowledge) on the same port.
	srv := &http.Server{Protocols: new(http.Protocols), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", cfg.Token, r.Method, r.URL.Path)
	})}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = srv.Serve(hl) }()
	uc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", UDPPort))
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := uc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = uc.WriteTo(append([]byte(cfg.Token+" "), buf[:n]...), from)
		}
	}()
	if err := serveDNS(cfg.DNS); err != nil {
		return err
	}
	if err := syscall.Chroot(cfg.Root); err != nil {
		return err
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the test closes stdin or dies
	return nil
}

// serveDNS answers A queries for records on 127.0.0.1:53 (UDP and TCP); NXDOMAIN otherwise.
func serveDNS(records map[string]string) error {
	answer := func(q []byte) []byte {
		var p dnsmessage.Parser
		h, err := p.Start(q)
		if err != nil {
			return nil
		}
		question, err := p.Question()
		if err != nil {
			return nil
		}
		resp := dnsmessage.Message{Header: dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeNameError},
			Questions: []dnsmessage.Question{question}}
		if ip := net.ParseIP(records[strings.ToLower(question.Name.String())]).To4(); ip != nil {
			resp.Header.RCode = dnsmessage.RCodeSuccess
			if question.Type == dnsmessage.TypeA {
				resp.Answers = []dnsmessage.Resource{{
					Header: dnsmessage.ResourceHeader{Name: question.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 30},
					Body:   &dnsmessage.AResource{A: [4]byte(ip)},
				}}
			}
		}
		b, _ := resp.Pack()
		return b
	}
	uc, err := net.ListenPacket("udp", "127.0.0.1:53")
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := uc.ReadFrom(buf)
			if err != nil {
				return
			}
			if b := answer(buf[:n]); b != nil {
				_, _ = uc.WriteTo(b, from)
			}
		}
	}()
	tl, err := net.Listen("tcp", "127.0.0.1:53")
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				q := make([]byte, int(l[0])<<8|int(l[1]))
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				if b := answer(q); b != nil {
					_, _ = c.Write(append([]byte{byte(len(b) >> 8), byte(len(b))}, b...))
				}
			}()
		}
	}()
	return nil
}
