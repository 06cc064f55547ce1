package stateful

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/nstest"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestMain(m *testing.M) { nstest.Main(m) }

func TestEnv(t *testing.T) {
	tg := nstest.Start(t, nstest.Options{Env: map[string]string{"DB_HOST": "db.internal", "DB_PASSWORD": "s3cret", "LOG_LEVEL": "debug"}})
	for _, tc := range []struct {
		name string
		f    mirrordv1alpha1.EnvFeature
		want map[string]string // checked keys; absent "" means must be missing
	}{
		{"everything", mirrordv1alpha1.EnvFeature{}, map[string]string{"DB_HOST": "db.internal", "DB_PASSWORD": "s3cret", "LOG_LEVEL": "debug"}},
		{"exclude", mirrordv1alpha1.EnvFeature{Exclude: []string{"*PASSWORD"}}, map[string]string{"DB_HOST": "db.internal", "DB_PASSWORD": ""}},
		{"include", mirrordv1alpha1.EnvFeature{Include: []string{"DB_*"}}, map[string]string{"DB_HOST": "db.internal", "LOG_LEVEL": ""}},
		{"include with a policy's exclude", mirrordv1alpha1.EnvFeature{Include: []string{"DB_*"}, Exclude: []string{"DB_PASSWORD"}}, map[string]string{"DB_HOST": "db.internal", "DB_PASSWORD": "", "LOG_LEVEL": ""}},
		{"override", mirrordv1alpha1.EnvFeature{Override: map[string]string{"LOG_LEVEL": "info"}}, map[string]string{"LOG_LEVEL": "info"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := ProcEnviron("/proc", tg.PID)
			if err != nil {
				t.Fatal(err)
			}
			env, err := Env(raw, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.want {
				got, ok := env[k]
				if want == "" && ok {
					t.Errorf("%s = %q, want it filtered out", k, got)
				} else if want != "" && got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
	if _, err := Env(nil, mirrordv1alpha1.EnvFeature{Exclude: []string{"[bad"}}); err == nil || !strings.Contains(err.Error(), `feature.env.exclude[0]: Invalid value: "[bad"`) {
		t.Errorf("bad pattern: err = %v", err)
	}
}

func TestFiles(t *testing.T) {
	tg := nstest.Start(t, nstest.Options{
		Files: map[string]string{"etc/config/app.yaml": "port: 8080\n", "var/run/secrets/token": "tok", "etc/secret/key": "hidden"},
		// An absolute symlink resolves inside the container, never on the node.
		Symlinks: map[string]string{"etc/config/current": "/etc/config/app.yaml", "etc/escape": "/../../../../etc/hostname"},
	})
	fsys, err := OpenFS("/proc", tg.PID, mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeRead, ReadWrite: []string{"^/tmp/"}, NotFound: []string{"^/etc/secret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()

	if b, err := fsys.ReadFile("/etc/config/app.yaml"); err != nil || string(b) != "port: 8080\n" {
		t.Errorf("read: %q %v", b, err)
	}
	if b, err := fsys.ReadFile("/etc/config/current"); err != nil || string(b) != "port: 8080\n" {
		t.Errorf("read through an absolute symlink: %q %v", b, err)
	}
	if link, err := fsys.Readlink("/etc/config/current"); err != nil || link != "/etc/config/app.yaml" {
		t.Errorf("readlink: %q %v", link, err)
	}
	if _, err := fsys.ReadFile("/etc/escape"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a symlink out of the root must stay inside it (no /etc/hostname there): %v", err)
	}
	st, err := fsys.Stat("/etc/config/current")
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("stat does not follow the final symlink: mode %o %v", st.Mode, err)
	}
	st, err = fsys.Stat("/etc/config/app.yaml")
	if err != nil || st.Size != int64(len("port: 8080\n")) {
		t.Errorf("stat: size %d %v", st.Size, err)
	}
	entries, err := fsys.ReadDir("/etc/config")
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	if err != nil || !slices.Equal(names, []string{"app.yaml", "current"}) {
		t.Errorf("readdir: %v %v", names, err)
	}
	if _, err := fsys.ReadFile("/etc/secret/key"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a notFound path must look absent: %v", err)
	}
	if _, err := fsys.Open("/etc/config/app.yaml", unix.O_WRONLY|unix.O_TRUNC, 0); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("writing in read mode: %v", err)
	}
	if b, _ := os.ReadFile(tg.Root + "/etc/config/app.yaml"); string(b) != "port: 8080\n" {
		t.Errorf("a refused write changed the file: %q", b)
	}
	if err := os.MkdirAll(tg.Root+"/tmp", 0o777); err != nil {
		t.Fatal(err)
	}
	w, err := fsys.Open("/tmp/out.txt", unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, 0o644)
	if err != nil {
		t.Fatalf("writing a readWrite path: %v", err)
	}
	_, _ = w.WriteString("written")
	w.Close()
	if b, _ := os.ReadFile(tg.Root + "/tmp/out.txt"); string(b) != "written" {
		t.Errorf("write did not land in the target's root: %q", b)
	}
	// The agent creates files as root: never a setuid or setgid one, whatever a session asks.
	x, err := fsys.Open("/tmp/suid", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o6755)
	if err != nil {
		t.Fatal(err)
	}
	x.Close()
	if st, err := os.Stat(tg.Root + "/tmp/suid"); err != nil || st.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 || st.Mode().Perm() != 0o755 {
		t.Errorf("created with mode %v (%v), want 0755 without setuid/setgid", st.Mode(), err)
	}
	if _, err := fsys.ReadFile("relative/path"); err == nil {
		t.Error("a relative path must be refused")
	}

	local, err := OpenFS("/proc", tg.PID, mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeLocal, ReadOnly: []string{"^/etc/config/"}})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if _, err := local.ReadFile("/var/run/secrets/token"); !errors.Is(err, ErrLocal) {
		t.Errorf("local mode: %v", err)
	}
	if _, err := local.ReadFile("/etc/config/app.yaml"); err != nil {
		t.Errorf("readOnly override in local mode: %v", err)
	}
	if _, err := OpenFS("/proc", tg.PID, mirrordv1alpha1.FSFeature{ReadOnly: []string{"(unclosed"}}); err == nil || !strings.Contains(err.Error(), "feature.fs.readOnly: invalid regular expression") {
		t.Errorf("bad regex: %v", err)
	}
}

func TestNetwork(t *testing.T) {
	tg := nstest.Start(t, nstest.Options{DNS: map[string]string{"api.demo.svc.cluster.local.": "10.96.7.7"}})
	ns, err := netns.OfPID("/proc", tg.PID)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	fsys, err := OpenFS("/proc", tg.PID, mirrordv1alpha1.FSFeature{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	n := NewNetwork(ns, fsys)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("outgoing TCP reaches what only the target can", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", nstest.HTTPPort)
		c, err := n.Dial(ctx, "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if want := tg.Token + " GET /hello"; string(body) != want {
			t.Errorf("body %q, want %q", body, want)
		}
	})
	t.Run("outgoing UDP", func(t *testing.T) {
		c, err := n.Dial(ctx, "udp", fmt.Sprintf("127.0.0.1:%d", nstest.UDPPort))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Write([]byte("ping"))
		buf := make([]byte, 100)
		m, err := c.Read(buf)
		if err != nil || string(buf[:m]) != tg.Token+" ping" {
			t.Errorf("udp echo %q %v", buf[:m], err)
		}
	})
	t.Run("names are refused, numbers required", func(t *testing.T) {
		if _, err := n.Dial(ctx, "tcp", "api:80"); err == nil || !strings.Contains(err.Error(), "want an IP address") {
			t.Errorf("err = %v", err)
		}
		if _, err := n.Dial(ctx, "unix", "/x"); err == nil {
			t.Error("unix network accepted")
		}
	})
	t.Run("a port nobody listens on", func(t *testing.T) {
		_, err := n.Dial(ctx, "tcp", "127.0.0.1:1")
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("DNS through the target's nameserver", func(t *testing.T) {
		conf, err := n.ResolvConf()
		if err != nil || !strings.Contains(string(conf), "search demo.svc.cluster.local") {
			t.Fatalf("resolv.conf %q %v", conf, err)
		}
		ip, rcode := lookup(t, ctx, n, "api.demo.svc.cluster.local.")
		if rcode != dnsmessage.RCodeSuccess || ip != "10.96.7.7" {
			t.Errorf("A api.demo.svc.cluster.local. = %s (%v)", ip, rcode)
		}
		if _, rcode := lookup(t, ctx, n, "missing.demo.svc.cluster.local."); rcode != dnsmessage.RCodeNameError {
			t.Errorf("missing name: rcode %v, want NXDOMAIN", rcode)
		}
	})
	t.Run("DNS over TCP", func(t *testing.T) {
		q := query(t, "api.demo.svc.cluster.local.")
		resp, err := n.exchangeTCP(ctx, "127.0.0.1:53", q)
		if err != nil || len(resp) < 12 {
			t.Fatalf("%v", err)
		}
	})
	t.Run("nothing served in the test's own namespace", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", nstest.HTTPPort), time.Second)
		if err == nil {
			defer c.Close()
			fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
			b, _ := io.ReadAll(c)
			if strings.Contains(string(b), tg.Token) {
				t.Fatal("the target's server answered from the host namespace: the test proves nothing")
			}
		}
	})
}

func query(t *testing.T, name string) []byte {
	q := dnsmessage.Message{Header: dnsmessage.Header{ID: 4242, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}}
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func lookup(t *testing.T, ctx context.Context, n *Network, name string) (string, dnsmessage.RCode) {
	t.Helper()
	resp, err := n.Exchange(ctx, query(t, name))
	if err != nil {
		t.Fatal(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(resp); err != nil {
		t.Fatal(err)
	}
	for _, a := range m.Answers {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			return net.IP(r.A[:]).String(), m.RCode
		}
	}
	return "", m.RCode
}
