package exec

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/clients"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/incoming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/outgoing"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/sandbox"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/session"
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
	if _, err := o.Spec(ns, session.Owner{Name: "-"}); err != nil {
		return err
	}
	if !o.ProxyMode {
		if err := sandbox.Supported(); err != nil {
			o.logf("%v: running in proxy mode instead", err)
			o.ProxyMode = true
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
	started, err := session.Start(ctx, session.StartOptions{
		Config: restCfg, Clients: cs, Namespace: ns, Name: o.Name, Spec: spec,
		MirrordNamespace: o.MirrordNamespace, Timeout: o.Timeout, Progress: o.progressOut(), Logf: o.logf,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := started.End(); err != nil {
			o.logf("%v", err)
		}
	}()
	// ended closes when someone else ends the session: the command is stopped then.
	ended := make(chan struct{})
	go func() {
		select {
		case <-started.Ended():
			o.logf("%v: stopping the command", started.EndedBecause())
			close(ended)
		case <-ctx.Done():
		}
	}()
	client, err := started.Dial(ctx, func(e protocol.ConnEvent) {
		if e.Err != nil {
			o.logf("%v: reconnecting (the session lasts %ds without heartbeats)", e.Err, spec.TTLSeconds)
		} else {
			o.logf("reconnected to the session after %s; connections open at the drop were reset", e.Down.Round(100*time.Millisecond))
		}
	})
	if err != nil {
		return err
	}
	defer client.Close()
	start := started.StartedAt

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
		code, err = o.runProxied(ctx, client, &spec, env, start, ended)
	} else {
		code, err = o.runSandboxed(ctx, client, &spec, env, hostname, start, ended)
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return &cmdutil.ExitError{Code: code}
	}
	return nil
}

// stopOnEnd asks the command to stop (SIGTERM, then SIGKILL after 10 s) once ended closes;
// the returned func stops watching.
func stopOnEnd(ended <-chan struct{}, signal func(os.Signal), kill func()) func() {
	done := make(chan struct{})
	go func() {
		select {
		case <-ended:
		case <-done:
			return
		}
		signal(syscall.SIGTERM)
		select {
		case <-time.After(10 * time.Second):
			kill()
		case <-done:
		}
	}()
	return func() { close(done) }
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
