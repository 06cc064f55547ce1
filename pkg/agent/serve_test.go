package agent

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/nstest"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

func TestMain(m *testing.M) { nstest.Main(m) }

// testKey is the agent key of the test agents.
var testKey = bytes.Repeat([]byte{'k'}, protocol.AgentKeySize)

// startAgent starts an agent with cfg (its key testKey) attached to a fake target and
// returns the address of its session port.
func startAgent(t *testing.T, cfg Config, opts nstest.Options) (string, *nstest.Target) {
	t.Helper()
	tg := nstest.Start(t, opts)
	cfg.KeyDir = t.TempDir()
	writeKey(t, cfg.KeyDir, testKey)
	a := New(cfg)
	if err := a.loadKey(); err != nil {
		t.Fatal(err)
	}
	nsFile, err := openNetns(tg.PID)
	if err != nil {
		t.Fatal(err)
	}
	a.target, a.ready = attach(tg.PID, startTime("/proc", tg.PID), nsFile), nil
	t.Cleanup(a.close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = a.ServeConn(t.Context(), c) }()
		}
	}()
	return ln.Addr().String(), tg
}

// connect opens session name with features on the agent at addr, as a member relay does.
func connect(t *testing.T, addr, name string, features mirrordv1alpha1.Features) *protocol.Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := protocol.DialAgent(tls.Client(conn, protocol.AgentClientTLS()), protocol.Hello{Session: name, Features: &features}, testKey)
	if err != nil {
		t.Fatal(err)
	}
	c := protocol.NewClient(sess)
	t.Cleanup(func() { c.Close() })
	return c
}

// serving starts an agent with cfg attached to a fake target and returns a client of one
// session with features on it.
func serving(t *testing.T, cfg Config, features mirrordv1alpha1.Features, opts nstest.Options) (*protocol.Client, *nstest.Target) {
	t.Helper()
	addr, tg := startAgent(t, cfg, opts)
	return connect(t, addr, "ns/s1", features), tg
}

func TestServeStateful(t *testing.T) {
	features := mirrordv1alpha1.Features{
		Env: mirrordv1alpha1.EnvFeature{Exclude: []string{"SECRET_*"}},
		FS:  mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeRead, ReadWrite: []string{"^/tmp/"}},
	}
	c, tg := serving(t, Config{}, features, nstest.Options{
		Env:   map[string]string{"DB_HOST": "db", "SECRET_KEY": "x"},
		Files: map[string]string{"etc/app/config.yaml": strings.Repeat("line\n", 200000), "tmp/.keep": ""},
		DNS:   map[string]string{"api.demo.svc.cluster.local.": "10.96.1.2"},
	})

	env, err := c.Env()
	if err != nil || env["DB_HOST"] != "db" || env["SECRET_KEY"] != "" {
		t.Errorf("env: %v %v", env, err)
	}

	// A file larger than one read, read whole through an open file.
	f, err := c.Open("/etc/app/config.yaml", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil || st.Size != 1000000 {
		t.Fatalf("stat of the open file: %+v %v", st, err)
	}
	buf := make([]byte, st.Size+10)
	n, err := f.ReadAt(buf, 0)
	if !errors.Is(err, io.EOF) || n != 1000000 || string(buf[:10]) != "line\nline\n" {
		t.Errorf("read %d bytes: %v", n, err)
	}
	f.Close()

	if _, err := c.Open("/etc/app/config.yaml", unix.O_WRONLY, 0); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("write in read mode: %v", err)
	}
	if _, err := c.Do(protocol.Request{Op: protocol.OpStat, Path: "/nope"}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat of a missing file: %v", err)
	}
	w, err := c.Open("/tmp/out", unix.O_RDWR|unix.O_CREAT, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.WriteAt([]byte("hello"), 0); n != 5 || err != nil {
		t.Errorf("write: %d %v", n, err)
	}
	w.Close()
	r, err := c.Do(protocol.Request{Op: protocol.OpReadDir, Path: "/tmp"})
	if err != nil || len(r.Entries) != 2 {
		t.Errorf("readdir: %+v %v", r.Entries, err)
	}

	// DNS through the target's resolver, and a connection from its network.
	q, _ := (&dnsmessage.Message{Header: dnsmessage.Header{ID: 7, RecursionDesired: true}, Questions: []dnsmessage.Question{{
		Name: dnsmessage.MustNewName("api.demo.svc.cluster.local."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}}).Pack()
	r, err = c.Do(protocol.Request{Op: protocol.OpDNS, Data: q})
	var m dnsmessage.Message
	if err != nil || m.Unpack(r.Data) != nil || len(m.Answers) != 1 {
		t.Fatalf("dns: %v %+v", err, m)
	}
	conn, err := c.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", nstest.HTTPPort))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /via-agent HTTP/1.0\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(conn)
	if !strings.Contains(string(b), tg.Token+" GET /via-agent") {
		t.Errorf("dialled through the agent: %q", b)
	}
	u, err := c.Dial("udp", fmt.Sprintf("127.0.0.1:%d", nstest.UDPPort))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = u.Write([]byte("ping"))
	_ = u.SetReadDeadline(time.Now().Add(5 * time.Second))
	ub := make([]byte, 100)
	if n, err := u.Read(ub); err != nil || string(ub[:n]) != tg.Token+" ping" {
		t.Errorf("udp through the agent: %q %v", ub[:n], err)
	}
	if _, err := c.Dial("tcp", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("dial to a closed port: %v", err)
	}
}

// TestServeRefusals: a connection without the agent's key, or naming no session, or with
// features the agent cannot serve, is refused at the handshake with the reason.
func TestServeRefusals(t *testing.T) {
	addr, _ := startAgent(t, Config{}, nstest.Options{})
	badFS := &mirrordv1alpha1.Features{FS: mirrordv1alpha1.FSFeature{Local: []string{"/tmp/(x"}}}
	badMode := &mirrordv1alpha1.Features{FS: mirrordv1alpha1.FSFeature{Mode: "rw"}}
	badFilter := &mirrordv1alpha1.Features{Network: mirrordv1alpha1.NetworkFeature{Incoming: mirrordv1alpha1.IncomingFeature{
		Mode: mirrordv1alpha1.IncomingModeSteal, HTTPFilter: &mirrordv1alpha1.HTTPFilter{Path: "("}}}}
	otherKey := bytes.Repeat([]byte{'o'}, protocol.AgentKeySize)
	for _, tc := range []struct {
		hello protocol.Hello
		key   []byte
		want  string
	}{
		{protocol.Hello{Session: "ns/mine"}, otherKey, "not signed with this agent's key"},
		{protocol.Hello{}, testKey, "names no session"},
		{protocol.Hello{Session: "ns/mine", Kind: protocol.HelloSession}, testKey, "serves agent sessions"},
		{protocol.Hello{Session: "ns/mine", Features: badFS}, testKey, `feature.fs.local[0]: Invalid value: "/tmp/(x"`},
		{protocol.Hello{Session: "ns/mine", Features: badMode}, testKey, `feature.fs.mode: Unsupported value: "rw"`},
		{protocol.Hello{Session: "ns/mine", Features: badFilter}, testKey, `feature.network.incoming.httpFilter.path: Invalid value: "("`},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, err = protocol.DialAgent(tls.Client(conn, protocol.AgentClientTLS()), tc.hello, tc.key)
		if err == nil || !strings.Contains(err.Error(), "refused by the peer") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.hello, err, tc.want)
		}
		conn.Close()
	}
	// The plain protocol, as before agents spoke TLS, is not even understood.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := protocol.Dial(conn, protocol.Hello{Session: "ns/mine"}, nil); err == nil {
		t.Error("a handshake without TLS was accepted")
	}
}

// TestAgentKey: an agent serves only once it has a key of the right size.
func TestAgentKey(t *testing.T) {
	dir := t.TempDir()
	a := New(Config{KeyDir: dir})
	if err := a.loadKey(); err == nil {
		t.Fatal("a key loaded from an empty directory")
	}
	writeKey(t, dir, testKey[:16])
	if err := a.loadKey(); err == nil || !strings.Contains(err.Error(), "has 16 bytes") {
		t.Fatalf("a short key: %v", err)
	}
	writeKey(t, dir, testKey)
	if err := a.loadKey(); err != nil || !bytes.Equal(*a.key.Load(), testKey) {
		t.Fatalf("the key: %v", err)
	}
}

func writeKey(t *testing.T, dir string, key []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, agentconfig.KeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServeSessionsApart: one agent serves two sessions at once, each with its own
// features: one reads the target's files only, the other may write /tmp; one sees every
// variable, the other not the secrets.
func TestServeSessionsApart(t *testing.T) {
	addr, _ := startAgent(t, Config{}, nstest.Options{
		Env:   map[string]string{"DB_HOST": "db", "SECRET_KEY": "x"},
		Files: map[string]string{"tmp/.keep": ""},
	})
	reader := connect(t, addr, "ns/reader", mirrordv1alpha1.Features{
		Env: mirrordv1alpha1.EnvFeature{Exclude: []string{"SECRET_*"}},
		FS:  mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeRead},
	})
	writer := connect(t, addr, "ns/writer", mirrordv1alpha1.Features{
		FS: mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeRead, ReadWrite: []string{"^/tmp/"}},
	})
	if env, err := reader.Env(); err != nil || env["DB_HOST"] != "db" || env["SECRET_KEY"] != "" {
		t.Errorf("reader's env: %v %v", env, err)
	}
	if env, err := writer.Env(); err != nil || env["SECRET_KEY"] != "x" {
		t.Errorf("writer's env: %v %v", env, err)
	}
	if _, err := reader.Open("/tmp/out", unix.O_RDWR|unix.O_CREAT, 0o600); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("reader writing /tmp: %v", err)
	}
	w, err := writer.Open("/tmp/out", unix.O_RDWR|unix.O_CREAT, 0o600)
	if err != nil {
		t.Fatalf("writer writing /tmp: %v", err)
	}
	w.Close()
	// The writer's session ending leaves the reader's working.
	writer.Close()
	if _, err := reader.Do(protocol.Request{Op: protocol.OpStat, Path: "/tmp/out"}); err != nil {
		t.Errorf("reader after the writer left: %v", err)
	}
}

// TestEnviron: the target's environment is the runtime's when it gave one, /proc's otherwise,
// and always carries the pod's hostname.
func TestEnviron(t *testing.T) {
	tg := nstest.Start(t, nstest.Options{Env: map[string]string{"FROM": "proc"}, Files: map[string]string{"etc/hostname": "api-from-file\n"}})
	for name, tc := range map[string]struct {
		s    served
		want []string
	}{
		"the runtime's, with its HOSTNAME": {served{pid: tg.PID, env: []string{"FROM=runtime", "HOSTNAME=api-1"}, hostname: "api-1"},
			[]string{"FROM=runtime", "HOSTNAME=api-1"}},
		"the runtime's, HOSTNAME from its spec": {served{pid: tg.PID, env: []string{"FROM=runtime"}, hostname: "api-1"},
			[]string{"FROM=runtime", "HOSTNAME=api-1"}},
		"/proc's, HOSTNAME from the container's /etc/hostname": {served{pid: tg.PID},
			[]string{"FROM=proc", "HOSTNAME=api-from-file"}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := tc.s.environ("/proc")
			if err != nil {
				t.Fatal(err)
			}
			for _, kv := range tc.want {
				if !slices.Contains(got, kv) {
					t.Errorf("environ = %q, want %q in it", got, kv)
				}
			}
			if n := len(slices.DeleteFunc(slices.Clone(got), func(kv string) bool { return !strings.HasPrefix(kv, "HOSTNAME=") })); n != 1 {
				t.Errorf("environ has %d HOSTNAME entries, want 1: %q", n, got)
			}
		})
	}
}
