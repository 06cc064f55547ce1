package local

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	osexec "os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/outgoing"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/owner"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/proxy"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/sandbox"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// runProxied runs the command as a plain child of this process, pointed at a local proxy
// (proxy mode: no namespaces needed).
func (o *Options) runProxied(ctx context.Context, client *protocol.Client, spec *mirrordv1alpha1.MirrordSessionSpec, env []string, start time.Time, ended <-chan struct{}) (int, error) {
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
		h.Search = rc.Search
	}
	srv := &proxy.Server{Dialer: h, ResolvConf: rc}
	if err := srv.Listen(ctx); err != nil {
		return -1, err
	}
	defer srv.Close()
	ports := &owner.Checker{}
	unsubscribe, err := Subscribe(ctx, client, spec, hostDialer{ports: ports}, netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		return -1, err
	}
	defer unsubscribe()
	o.logf("proxy mode: the command gets the target's environment and incoming traffic (on this machine's ports), and reaches the target's network through %s (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY). Not in proxy mode: remote files, UDP, and connections of programs that ignore those variables", srv.Addr())
	o.logf("running %s (ready in %s)", strings.Join(o.Command, " "), time.Since(start).Round(time.Millisecond))
	return runChild(o.Command, append(env, srv.Env()...), o.In, o.Out, o.ErrOut, ended, ports.SetRoot)
}

// hostDialer delivers incoming connections to this machine's loopback (proxy mode), only to
// ports the command's own processes listen on: never to another program's, whatever port
// the traffic names.
type hostDialer struct{ ports *owner.Checker }

func (h hostDialer) DialIn(ctx context.Context, _, dst netip.AddrPort) (net.Conn, error) {
	owned, err := h.ports.Owns(dst.Port())
	if err != nil {
		return nil, fmt.Errorf("who listens on port %d: %w", dst.Port(), err)
	}
	if !owned {
		return nil, fmt.Errorf("port %d is not one the command listens on: proxy mode delivers only to the command's own ports", dst.Port())
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", dst.String())
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
// started, when given, hears the child's PID once it runs.
func runChild(command, env []string, stdin io.Reader, stdout, stderr io.Writer, ended <-chan struct{}, started ...func(pid int)) (int, error) {
	cmd := osexec.Command(command[0], command[1:]...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, stdin, stdout, stderr
	if path, err := sandbox.LookPath(command[0], env); err == nil {
		cmd.Path, cmd.Err = path, nil
	}
	cmd.SysProcAttr = childAttr()
	// The parent-death signal follows the forking thread: keep it for the child's life.
	type result struct {
		code int
		err  error
	}
	startErr, done := make(chan error, 1), make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			startErr <- err
			return
		}
		startErr <- nil
		code, err := sandbox.ExitCode(cmd.Wait())
		done <- result{code, err}
	}()
	if err := <-startErr; err != nil {
		return 127, fmt.Errorf("running %s: %w", command[0], err)
	}
	for _, f := range started {
		f(cmd.Process.Pid)
	}
	stop := forwardSignals(stdin, func(s os.Signal) { _ = cmd.Process.Signal(s) })
	defer stop()
	defer stopOnEnd(ended, func(s os.Signal) { _ = cmd.Process.Signal(s) }, func() { _ = cmd.Process.Kill() })()
	r := <-done
	return r.code, r.err
}
