package local

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/incoming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/netstack"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/outgoing"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/remotefs"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/local/sandbox"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// runSandboxed runs the command in its own namespaces: every connection, name and file it
// uses goes through the session as the features say.
func (o *Options) runSandboxed(ctx context.Context, client *protocol.Client, spec *mirrordv1alpha1.MirrordSessionSpec, env []string, hostname string, start time.Time, ended <-chan struct{}) (int, error) {
	h, err := outgoingHandler(client, spec)
	if err != nil {
		return -1, err
	}
	opts := sandbox.Options{Command: o.Command, Env: env, Hostname: hostname, LocalPorts: o.LocalPorts,
		Incoming: spec.Features.Network.Incoming.Mode != mirrordv1alpha1.IncomingModeOff,
		Stdin:    o.In, Stdout: o.Out, Stderr: o.ErrOut}
	if h.DNS {
		r, err := client.Do(protocol.Request{Op: protocol.OpResolvConf})
		if err != nil {
			return -1, fmt.Errorf("reading the target's resolv.conf: %w", err)
		}
		opts.ResolvConf = outgoing.SandboxResolvConf(r.Data, h.DNSAddr)
		h.Search = outgoing.ParseResolvConf(r.Data).Search
	}
	if opts.RemoteDirs, err = o.remoteDirs(client, spec.Features.FS); err != nil {
		return -1, err
	}
	if !o.FSMapping.Empty() {
		if spec.Features.FS.ReadsRemotely() {
			opts.MappedDirs = o.FSMapping.Dirs()
		} else {
			o.logf("feature.fs.mapping ignored: fs mode local reads no file of the target")
		}
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
	for _, rd := range sb.Mapped {
		_, err := remotefs.ServeMapped(rd.Device, client, rd.Path, o.FSMapping, writable)
		rd.Device.Close()
		if err != nil {
			sb.Kill()
			return -1, fmt.Errorf("serving %s for feature.fs.mapping: %w", rd.Path, err)
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
	// Incoming connections through kernel sockets inside the sandbox, or else the netstack.
	var dialer incoming.Dialer = st
	if sb.Delivery != nil {
		dialer = sb.Delivery
	} else if opts.Incoming {
		o.logf("incoming connections go through the userspace network stack: %s", sb.NoDelivery)
	}
	unsubscribe, err := Subscribe(ctx, client, spec, dialer, netip.MustParseAddr(sandbox.ChildIP))
	if err != nil {
		sb.Kill()
		return -1, err
	}
	defer unsubscribe()
	o.logf("running %s (ready in %s)", strings.Join(o.Command, " "), time.Since(start).Round(time.Millisecond))
	stop := forwardSignals(o.In, sb.Signal)
	defer stop()
	defer stopOnEnd(ended, sb.Signal, sb.Kill)()
	return sb.Run()
}

// remoteDirs are the target's volume directories to show the command (none with fs mode
// local and no overrides that read remotely).
func (o *Options) remoteDirs(client *protocol.Client, fs mirrordv1alpha1.FSFeature) ([]string, error) {
	if !fs.ReadsRemotely() {
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
			go func() { _, _ = protocol.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
			_, _ = protocol.Copy(c, up)
		}()
	}
}
