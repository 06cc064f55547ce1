package exec

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	osexec "os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/clients"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/incoming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/netstack"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/outgoing"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/proxy"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/remotefs"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/sandbox"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/relay"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/session"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

// keepLocal are variables of the developer's environment the target's never replace: they
// describe the developer's machine (where the command's binary and home are), not the pod.
var keepLocal = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "PWD", "TMPDIR", "LANG", "LC_ALL", "DISPLAY", "SSH_AUTH_SOCK"}

// Run runs the session: create it, wait for it, run the command in its context, end it.
func (o *Options) Run(ctx context.Context) error {
	restCfg, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return err
	}
	cs, err := clients.ForConfig(restCfg)
	if err != nil {
		return err
	}
	ns, _, err := o.ConfigFlags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return err
	}
	// Every mistake in the flags is reported before anything is created.
	if _, err := o.Spec(ns, "-"); err != nil {
		return err
	}
	if !o.ProxyMode {
		if err := sandbox.Supported(); err != nil {
			return fmt.Errorf("%v: run with --proxy-mode (environment and incoming traffic; outgoing only through HTTP(S)_PROXY/ALL_PROXY)", err)
		}
	}
	owner, err := session.Whoami(ctx, cs.Kube)
	if err != nil {
		return err
	}
	spec, err := o.Spec(ns, owner)
	if err != nil {
		return err
	}
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	spec.PublicKey = base64.StdEncoding.EncodeToString(pub)

	start := time.Now()
	s, err := session.Create(ctx, cs.Mirrord, ns, spec)
	if err != nil {
		return err
	}
	o.logf("session %s/%s for %s", ns, s.Name, target.String(spec.Target))
	// From here every exit ends the session; a kill -9 leaves it to its TTL.
	keepCtx, stopKeep := context.WithCancel(context.WithoutCancel(ctx))
	ended := make(chan error, 1)
	go func() {
		ended <- session.KeepAlive(keepCtx, cs.Mirrord, ns, s.Name, time.Duration(spec.TTLSeconds)*time.Second/3)
	}()
	defer func() {
		stopKeep()
		ectx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := session.End(ectx, cs.Mirrord, ns, s.Name); err != nil {
			o.logf("ending session %s: %v (it expires %ds after the last heartbeat)", s.Name, err, spec.TTLSeconds)
		}
	}()

	wctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	p := &session.Progress{Out: o.progressOut()}
	ready, err := session.Wait(wctx, cs.Mirrord, ns, s.Name, p.Print)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("session %s not ready after %s: %s", s.Name, o.Timeout, p.Last)
		}
		return err
	}
	client, err := relay.DialSession(ctx, restCfg, o.MirrordNamespace, ready, key)
	if err != nil {
		return err
	}
	defer client.Close()

	env := os.Environ()
	var hostname string
	if !spec.Features.Env.Disabled {
		remote, err := client.Env()
		if err != nil {
			return fmt.Errorf("reading the target's environment: %w", err)
		}
		hostname = remote["HOSTNAME"]
		env = mergeEnv(env, remote)
	}
	var code int
	if o.ProxyMode {
		code, err = o.runProxied(ctx, client, &spec, env, start)
	} else {
		code, err = o.runSandboxed(ctx, client, &spec, env, hostname, start)
	}
	if err != nil {
		return err
	}
	select {
	case err := <-ended:
		if err != nil {
			o.logf("%v", err)
		}
	default:
	}
	if code != 0 {
		return &cmdutil.ExitError{Code: code}
	}
	return nil
}

// outgoingHandler decides, per connection and name, between the target's network and this
// machine's, as the session's features say.
func outgoingHandler(client *protocol.Client, spec *mirrordv1alpha1.MirrordSessionSpec) (*outgoing.Handler, error) {
	net := spec.Features.Network
	h := &outgoing.Handler{
		Remote: client, TCP: net.Outgoing.TCP == nil || *net.Outgoing.TCP, UDP: net.Outgoing.UDP == nil || *net.Outgoing.UDP,
		DNS: !net.DNS.Disabled, DNSAddr: netip.MustParseAddr(sandbox.DNSIP), LocalResolver: outgoing.LocalNameserver(),
	}
	if f := net.Outgoing.Filter; f != nil {
		var err error
		if len(f.Remote) > 0 {
			h.Filter, err = outgoing.ParseFilter(f.Remote, true)
		} else {
			h.Filter, err = outgoing.ParseFilter(f.Local, false)
		}
		if err != nil {
			return nil, err
		}
	}
	return h, nil
}

// subscribe delivers the target's incoming traffic to dialer's side until ctx ends.
func subscribe(ctx context.Context, client *protocol.Client, spec *mirrordv1alpha1.MirrordSessionSpec, dialer incoming.Dialer, target netip.Addr) (func(), error) {
	in := spec.Features.Network.Incoming
	if in.Mode == mirrordv1alpha1.IncomingModeOff {
		return func() {}, nil
	}
	sub, err := client.Subscribe()
	if err != nil {
		return nil, fmt.Errorf("subscribing to the target's incoming traffic: %w", err)
	}
	d := &incoming.Deliverer{Dialer: dialer, Target: target, PortMapping: map[uint16]uint16{}}
	for _, m := range in.PortMapping {
		d.PortMapping[uint16(m.Remote)] = uint16(m.Local)
	}
	go func() { _ = d.Serve(ctx, sub) }()
	return func() { sub.Close() }, nil
}

// runProxied runs the command as a plain child of this process, pointed at a local proxy
// (proxy mode: no namespaces needed).
func (o *Options) runProxied(ctx context.Context, client *protocol.Client, spec *mirrordv1alpha1.MirrordSessionSpec, env []string, start time.Time) (int, error) {
	h, err := outgoingHandler(client, spec)
	if err != nil {
		return -1, err
	}
	var rc outgoing.ResolvConf
	if h.DNS {
		r, err := client.Do(protocol.Request{Op: protocol.OpResolvConf})
		if err != nil {
			return -1, fmt.Errorf("reading the target's resolv.conf: %w", err)
		}
		rc = outgoing.ParseResolvConf(r.Data)
	}
	srv := &proxy.Server{Dialer: h, ResolvConf: rc}
	if err := srv.Listen(ctx); err != nil {
		return -1, err
	}
	defer srv.Close()
	unsubscribe, err := subscribe(ctx, client, spec, hostDialer{}, netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		return -1, err
	}
	defer unsubscribe()
	o.logf("proxy mode: the command gets the target's environment and incoming traffic (on this machine's ports), and reaches the target's network through %s (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY). Not in proxy mode: remote files, UDP, and connections of programs that ignore those variables", srv.Addr())
	o.logf("running %s (ready in %s)", strings.Join(o.Command, " "), time.Since(start).Round(time.Millisecond))
	return runChild(o.Command, append(env, srv.Env()...), o.In, o.Out, o.ErrOut)
}

// hostDialer delivers incoming connections to this machine's loopback (proxy mode).
type hostDialer struct{}

func (hostDialer) DialIn(ctx context.Context, _, dst netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", dst.String())
}

func (o *Options) runSandboxed(ctx context.Context, client *protocol.Client, spec *mirrordv1alpha1.MirrordSessionSpec, env []string, hostname string, start time.Time) (int, error) {
	h, err := outgoingHandler(client, spec)
	if err != nil {
		return -1, err
	}
	opts := sandbox.Options{Command: o.Command, Env: env, Hostname: hostname, LocalPorts: o.LocalPorts,
		Stdin: o.In, Stdout: o.Out, Stderr: o.ErrOut}
	if h.DNS {
		r, err := client.Do(protocol.Request{Op: protocol.OpResolvConf})
		if err != nil {
			return -1, fmt.Errorf("reading the target's resolv.conf: %w", err)
		}
		opts.ResolvConf = outgoing.SandboxResolvConf(r.Data, h.DNSAddr)
	}
	if opts.RemoteDirs, err = o.remoteDirs(client, spec.Features.FS); err != nil {
		return -1, err
	}
	sb, err := sandbox.Start(opts)
	if err != nil {
		return -1, err
	}
	for _, why := range sb.Skipped {
		o.logf("remote directory not mounted: %s", why)
	}
	fs := spec.Features.FS
	writable := fs.Mode == mirrordv1alpha1.FSModeWrite || len(fs.ReadWrite) > 0
	for _, rd := range sb.Remote {
		// The mount goes with the sandbox's mount namespace; the server then stops by itself.
		_, err := remotefs.Serve(rd.Device, client, rd.Path, writable)
		rd.Device.Close()
		if err != nil {
			sb.Kill()
			return -1, fmt.Errorf("serving the target's %s: %w", rd.Path, err)
		}
	}
	st, err := netstack.New(sb.TUN, h)
	if err != nil {
		sb.Kill()
		return -1, err
	}
	defer st.Close()
	for i, ln := range sb.Listeners {
		go forwardLocal(ln, o.LocalPorts[i])
	}
	unsubscribe, err := subscribe(ctx, client, spec, st, netip.MustParseAddr(sandbox.ChildIP))
	if err != nil {
		sb.Kill()
		return -1, err
	}
	defer unsubscribe()
	o.logf("running %s (ready in %s)", strings.Join(o.Command, " "), time.Since(start).Round(time.Millisecond))
	stop := forwardSignals(o.In, sb.Signal)
	defer stop()
	return sb.Run()
}

// forwardSignals passes signals sent to this process on to the command. A terminal sends
// Ctrl-C (and Ctrl-\) to the command itself (same process group): those are not passed on
// again. The returned func stops forwarding.
func forwardSignals(in io.Reader, send func(os.Signal)) func() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	tty := false
	if f, ok := in.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigs:
				if !tty || (sig != os.Interrupt && sig != syscall.SIGQUIT) {
					send(sig)
				}
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}

// runChild runs command with env as this process's child, its exit code returned; it dies
// with this process (kill -9 included, on Linux).
func runChild(command, env []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	cmd := osexec.Command(command[0], command[1:]...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, stdin, stdout, stderr
	if path, err := lookPathIn(command[0], env); err == nil {
		cmd.Path, cmd.Err = path, nil
	}
	cmd.SysProcAttr = childAttr()
	// The parent-death signal follows the forking thread: keep it for the child's life.
	type result struct {
		code int
		err  error
	}
	started, done := make(chan error, 1), make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		err := cmd.Wait()
		var ee *osexec.ExitError
		switch {
		case err == nil:
			done <- result{0, nil}
		case errors.As(err, &ee):
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				done <- result{128 + int(ws.Signal()), nil}
				return
			}
			done <- result{ee.ExitCode(), nil}
		default:
			done <- result{-1, err}
		}
	}()
	if err := <-started; err != nil {
		return 127, fmt.Errorf("running %s: %w", command[0], err)
	}
	stop := forwardSignals(stdin, func(s os.Signal) { _ = cmd.Process.Signal(s) })
	defer stop()
	r := <-done
	return r.code, r.err
}

// lookPathIn finds file in env's PATH (the command's, which may differ from ours).
func lookPathIn(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	for _, kv := range env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, dir := range filepath.SplitList(p) {
				cand := filepath.Join(dir, file)
				if st, err := os.Stat(cand); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
					return cand, nil
				}
			}
		}
	}
	return osexec.LookPath(file)
}

// remoteDirs are the target's volume directories to show the command (none with fs mode
// local and no overrides that read remotely).
func (o *Options) remoteDirs(client *protocol.Client, fs mirrordv1alpha1.FSFeature) ([]string, error) {
	if fs.Mode == mirrordv1alpha1.FSModeLocal && len(fs.ReadOnly) == 0 && len(fs.ReadWrite) == 0 {
		return nil, nil
	}
	r, err := client.Do(protocol.Request{Op: protocol.OpMounts})
	if err != nil {
		return nil, fmt.Errorf("listing the target's volumes: %w", err)
	}
	var dirs []string
	for _, m := range r.Mounts {
		if !m.Dir {
			o.logf("remote file %s not shown: single-file (subPath) volumes are not mounted", m.Path)
			continue
		}
		dirs = append(dirs, m.Path)
	}
	return dirs, nil
}

// forwardLocal connects the command's 127.0.0.1:port to the developer's.
func forwardLocal(ln net.Listener, port uint16) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				return
			}
			defer up.Close()
			go func() { _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
			_, _ = io.Copy(c, up)
		}()
	}
}

// mergeEnv is local with remote's variables over it, except keepLocal.
func mergeEnv(local []string, remote map[string]string) []string {
	m := map[string]string{}
	for _, kv := range local {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	for k, v := range remote {
		if _, have := m[k]; have && slices.Contains(keepLocal, k) {
			continue
		}
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func (o *Options) progressOut() io.Writer {
	if o.Quiet {
		return io.Discard
	}
	return o.ErrOut
}

func (o *Options) logf(format string, args ...any) {
	if !o.Quiet {
		fmt.Fprintf(o.ErrOut, "mirrord: "+format+"\n", args...)
	}
}
