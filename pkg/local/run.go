// Package local is the local side of a session: it runs the developer's command in the
// session's context, in its own namespaces (sandbox: a TUN into a userspace network stack,
// remote files through FUSE, incoming connections delivered inside) or, where those are not
// available, in proxy mode. Run is its front door; the CLI only wires flags to it.
package local

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/dbbranch"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/fsmap"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/incoming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/outgoing"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/sandbox"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// Options are what the local side needs besides the session.
type Options struct {
	// Command is what to run, with its arguments.
	Command []string
	// ProxyMode runs it without namespaces: env, incoming and proxy-aware outgoing only.
	ProxyMode bool
	// LocalPorts are ports of this machine the command reaches on its own 127.0.0.1.
	LocalPorts []uint16
	// EnvFile holds the variables of an env file (feature.env.env_file): read on this
	// machine, never sent to the cluster.
	EnvFile map[string]string
	// DBBranches are the database branches the command uses: their variables are pointed at
	// them (dbbranch.Rewrite).
	DBBranches []dbbranch.Ready
	// Queues are the consumer's queue variables pointed at the session's own split queues
	// (session.QueueEnv).
	Queues map[string]string
	// FSMapping is feature.fs.mapping: local paths shown as the target's files at other paths.
	FSMapping *fsmap.Mapping
	// In, Out and ErrOut are the command's streams.
	In          io.Reader
	Out, ErrOut io.Writer
	// Logf tells the user what happens ("mirrord: ..." lines); nil says nothing.
	Logf func(format string, args ...any)
	// StartedAt is when the session was created: the "ready in" line counts from it.
	StartedAt time.Time
	// Ended closes when someone else ended the session: the command is stopped then.
	Ended <-chan struct{}
}

func (o *Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// Run runs the command in the context of the session client reaches, whose spec is spec:
// with the target's environment (unless the session has none), and in its own namespaces
// unless o.ProxyMode. It returns the command's exit code.
func Run(ctx context.Context, client *protocol.Client, spec *mirrordv1alpha1.MirrordSessionSpec, o Options) (int, error) {
	var remote map[string]string
	var hostname string
	if !spec.Features.Env.Disabled {
		var err error
		if remote, err = client.Env(); err != nil {
			return -1, fmt.Errorf("reading the target's environment: %w", err)
		}
		hostname = remote["HOSTNAME"]
	}
	session, err := sessionEnv(remote, spec.Features.Env, o.EnvFile)
	if err != nil {
		return -1, err
	}
	for _, note := range dbbranch.Rewrite(session, o.DBBranches) {
		o.logf("%s", note)
	}
	if session == nil && len(o.Queues) > 0 {
		session = map[string]string{}
	}
	for _, name := range slices.Sorted(maps.Keys(o.Queues)) {
		session[name] = o.Queues[name]
		o.logf("%s names this session's queue %s: it receives the messages your filter matches", name, o.Queues[name])
	}
	env := unsetEnv(mergeEnv(os.Environ(), session), spec.Features.Env.Unset)
	if o.ProxyMode {
		if !o.FSMapping.Empty() {
			o.logf("feature.fs.mapping ignored: proxy mode shows no remote files")
		}
		return o.runProxied(ctx, client, spec, env, o.StartedAt, o.Ended)
	}
	return o.runSandboxed(ctx, client, spec, env, hostname, o.StartedAt, o.Ended)
}

// keepLocal are variables of the developer's environment the target's never replace: they
// describe the developer's machine (where the command's binary and home are), not the pod.
var keepLocal = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "PWD", "TMPDIR", "LANG", "LC_ALL", "DISPLAY", "SSH_AUTH_SOCK"}

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
	var err error
	if h.Filter, err = outgoing.FilterOf(net.Outgoing.Filter); err != nil {
		return nil, err
	}
	if h.DNSFilter, err = outgoing.FilterOf(net.DNS.Filter); err != nil {
		return nil, err
	}
	return h, nil
}

// Subscribe delivers the target's incoming traffic (the spec's mode, ports and port mapping) to
// dialer's side, addressed to target, until ctx ends or the returned func is called.
func Subscribe(ctx context.Context, client *protocol.Client, spec *mirrordv1alpha1.MirrordSessionSpec, dialer incoming.Dialer, target netip.Addr) (func(), error) {
	in := spec.Features.Network.Incoming
	if in.Mode == mirrordv1alpha1.IncomingModeOff || spec.Target.IsTargetless() {
		return func() {}, nil // a targetless session has no target to receive traffic from
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
