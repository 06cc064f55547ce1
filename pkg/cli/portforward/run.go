package portforward

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/cli/cmdutil"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/outgoing"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/session"
)

// MaxConns bounds the connections one port-forward carries at once (all ports together);
// more wait in the listeners' backlogs until one ends.
const MaxConns = 256

// ResolveTimeout bounds a host name's lookup through the session.
const ResolveTimeout = 10 * time.Second

// forwardFeatures are what a port-forward asks of the target: outgoing TCP and DNS, and with
// -R the incoming traffic of those ports only (in the config's mode, mirror by default, with
// its HTTP filter), so that policies blocking the rest (environment, files) do not stand in
// its way.
func forwardFeatures(f mirrordv1alpha1.Features, reverses []Reverse) mirrordv1alpha1.Features {
	f.Env = mirrordv1alpha1.EnvFeature{Disabled: true}
	f.FS = mirrordv1alpha1.FSFeature{Mode: mirrordv1alpha1.FSModeLocal}
	in := mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeOff}
	if len(reverses) > 0 {
		in.Mode, in.HTTPFilter = f.Network.Incoming.Mode, f.Network.Incoming.HTTPFilter
		if in.Mode == "" || in.Mode == mirrordv1alpha1.IncomingModeOff {
			in.Mode = mirrordv1alpha1.IncomingModeMirror
		}
		for _, r := range reverses {
			in.Ports = append(in.Ports, int32(r.RemotePort))
			in.PortMapping = append(in.PortMapping, mirrordv1alpha1.PortMapping{Remote: int32(r.RemotePort), Local: int32(r.LocalPort)})
		}
	}
	f.Network.Incoming = in
	f.Network.Outgoing = mirrordv1alpha1.OutgoingFeature{TCP: ptr.To(true), UDP: ptr.To(true)}
	f.Network.DNS = mirrordv1alpha1.DNSFeature{}
	return f
}

// Run starts the session, listens on every forward's local port, and carries connections
// until ctx ends or the session is ended elsewhere.
func (o *Options) Run(ctx context.Context) error {
	primary, err := cmdutil.ConnectPrimary(o.ConfigFlags)
	if err != nil {
		return err
	}
	ns := primary.Namespace
	if _, err := o.Spec(ns, session.Owner{Name: "-"}); err != nil {
		return err
	}
	// The ports first: one in use is an error before any session exists.
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for _, f := range o.Forwards {
		var lc net.ListenConfig
		l, err := lc.Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(f.LocalPort))))
		if err != nil {
			return fmt.Errorf("-L %s: %w", f, err)
		}
		listeners = append(listeners, l)
	}
	owner, err := session.Whoami(ctx, primary.Clients.Kube)
	if err != nil {
		return err
	}
	spec, err := o.Spec(ns, owner)
	if err != nil {
		return err
	}
	spec.Features = forwardFeatures(spec.Features, o.Reverses)
	started, err := session.Start(ctx, session.StartOptions{
		Config: primary.Config, Clients: primary.Clients, Namespace: ns, Name: o.Name, Spec: spec,
		MirrordNamespace: o.MirrordNamespace, Timeout: o.Timeout, Progress: o.ErrOut, Logf: o.logf,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := started.End(); err != nil {
			o.logf("%v", err)
		}
	}()
	client, err := started.Dial(ctx, session.LogReconnects(o.logf, spec.TTLSeconds))
	if err != nil {
		return err
	}
	defer client.Close()
	spec = started.Session.Spec // with its profile applied
	if len(o.Reverses) > 0 {
		dialer := reverseDialer{}
		for _, r := range o.Reverses {
			dialer[r.LocalPort] = true
		}
		unsubscribe, err := local.Subscribe(ctx, client, &spec, dialer, netip.MustParseAddr("127.0.0.1"))
		if err != nil {
			return err
		}
		defer unsubscribe()
		for _, r := range o.Reverses {
			o.logf("forwarding %s (%s)", r, spec.Features.Network.Incoming.Description())
		}
	}
	fw := &forwarder{client: client, dns: &outgoing.Handler{Remote: client, TCP: true, UDP: true, DNS: true},
		slots: make(chan struct{}, MaxConns), logf: o.logf}
	if len(o.Forwards) > 0 {
		r, err := client.Do(protocol.Request{Op: protocol.OpResolvConf})
		if err != nil {
			return fmt.Errorf("reading the target's resolv.conf: %w", err)
		}
		fw.rc = outgoing.ParseResolvConf(r.Data)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i, f := range o.Forwards {
		o.logf("forwarding %s (from the cluster's network)", f)
		wg.Go(func() { fw.serve(ctx, listeners[i], f) })
	}
	select {
	case <-ctx.Done():
	case <-started.Ended():
		o.logf("%v: stopping", started.EndedBecause())
	}
	cancel()
	for _, l := range listeners {
		l.Close()
	}
	wg.Wait()
	return nil
}

// reverseDialer delivers the target's traffic to this machine's loopback, to the -R ports
// only (whatever port a delivery names).
type reverseDialer map[uint16]bool

func (d reverseDialer) DialIn(ctx context.Context, _, dst netip.AddrPort) (net.Conn, error) {
	if !d[dst.Port()] {
		return nil, fmt.Errorf("port %d is not one of -R's", dst.Port())
	}
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", dst.String())
}

// forwarder carries each accepted connection to its forward's host through the session.
type forwarder struct {
	client *protocol.Client
	rc     outgoing.ResolvConf
	dns    *outgoing.Handler
	slots  chan struct{}
	logf   func(string, ...any)
}

func (fw *forwarder) serve(ctx context.Context, l net.Listener, f Forward) {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		select {
		case fw.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		c, err := l.Accept()
		if err != nil {
			<-fw.slots
			return
		}
		conns.Go(func() {
			defer func() { <-fw.slots }()
			if err := fw.carry(ctx, c, f); err != nil {
				fw.logf("-L %s: %v", f, err)
			}
		})
	}
}

// carry resolves f's host as the target would, dials it from the cluster, and copies both
// ways until either side closes (or ctx ends).
func (fw *forwarder) carry(ctx context.Context, c net.Conn, f Forward) error {
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, ResolveTimeout)
	ip, err := fw.dns.LookupHost(rctx, f.Host, fw.rc)
	cancel()
	if err != nil {
		return err
	}
	remote, err := fw.client.Dial("tcp", netip.AddrPortFrom(ip, f.RemotePort).String())
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.Close(); remote.Close() })
	defer stop()
	protocol.Splice(c, remote)
	return nil
}

func (o *Options) logf(format string, args ...any) {
	fmt.Fprintf(o.ErrOut, "mirrord: "+format+"\n", args...)
}
