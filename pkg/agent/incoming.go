package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"

	"github.com/hashicorp/yamux"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/mirror"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/steal"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// incomingPorts are the target ports the session intercepts: its configured ports, or every
// port the target listens on, less the ignored ones.
func (a *Agent) incomingPorts(t *served) ([]uint16, error) {
	in := a.cfg.Features.Network.Incoming
	var ports []uint16
	if len(in.Ports) > 0 {
		for _, p := range in.Ports {
			if p < 1 || p > 65535 {
				return nil, fmt.Errorf("feature.network.incoming.ports: %d is out of range 1-65535", p)
			}
			ports = append(ports, uint16(p))
		}
	} else {
		live, err := t.ns.ListeningTCPPorts()
		if err != nil {
			return nil, fmt.Errorf("listing the target's ports: %w", err)
		}
		for p := range live {
			// Every port, but the probed ones when stealing (unless asked for).
			if in.Mode == mirrordv1alpha1.IncomingModeSteal && in.HTTPFilter == nil && !in.StealProbePorts && slices.Contains(a.cfg.ProbePorts, int32(p)) {
				continue
			}
			ports = append(ports, p)
		}
	}
	ports = slices.DeleteFunc(ports, func(p uint16) bool { return slices.Contains(in.IgnorePorts, int32(p)) })
	slices.Sort(ports)
	if len(ports) == 0 {
		return nil, errors.New("the target listens on no TCP port to intercept: set feature.network.incoming.ports")
	}
	return ports, nil
}

// serveIncoming subscribes the session to the target's incoming traffic until the
// subscription's stream closes.
func (a *Agent) serveIncoming(ctx context.Context, sess *yamux.Session, st *yamux.Stream, t *served) error {
	in := a.cfg.Features.Network.Incoming
	mode := in.Mode
	if mode == "" {
		mode = mirrordv1alpha1.IncomingModeMirror
	}
	ports, err := a.incomingPorts(t)
	if mode == mirrordv1alpha1.IncomingModeOff {
		err = errors.New("incoming traffic is off for this session")
	}
	if err != nil {
		return protocol.WriteMessage(st, failure(err))
	}
	// deliver opens a stream back to the session for one connection or request.
	deliver := func(kind protocol.IncomingKind, client, server string) (*yamux.Stream, error) {
		s, err := sess.OpenStream()
		if err != nil {
			return nil, err
		}
		if err := protocol.WriteMessage(s, protocol.Incoming{Kind: kind, Client: client, Server: server}); err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	}

	switch mode {
	case mirrordv1alpha1.IncomingModeMirror:
		m, err := mirror.Start(t.ns, ports, func(c *mirror.Conn) {
			s, err := deliver(protocol.IncomingMirror, c.Client.String(), c.Server.String())
			if err != nil {
				_, _ = io.Copy(io.Discard, c.Data) // the capture must never wait for us
				return
			}
			_, _ = protocol.Copy(s, c.Data)
			s.Close()
		})
		if err != nil {
			return protocol.WriteMessage(st, failure(err))
		}
		defer m.Close()
	case mirrordv1alpha1.IncomingModeSteal:
		p32 := make([]int32, len(ports))
		for i, p := range ports {
			p32[i] = int32(p)
		}
		filter, err := steal.CompileFilter(in.HTTPFilter)
		if err != nil {
			return protocol.WriteMessage(st, failure(err))
		}
		if err := steal.CheckPorts(p32, a.cfg.ProbePorts, in.StealProbePorts || in.HTTPFilter != nil); err != nil {
			return protocol.WriteMessage(st, failure(err))
		}
		var s *steal.Stealer
		s, err = steal.Start(ctx, t.ns, a.cfg.Session, func(c net.Conn, orig netip.AddrPort) {
			if filter == nil {
				stealWhole(c, orig, deliver)
				return
			}
			_ = steal.Serve(ctx, c, filter, requestRelay(c, orig, deliver),
				func(ctx context.Context) (net.Conn, error) { return s.DialOriginal(ctx, orig) })
		})
		if err != nil {
			return protocol.WriteMessage(st, failure(err))
		}
		defer s.Close()
		for _, p := range ports {
			if err := s.Steal(p, filter != nil); err != nil {
				return protocol.WriteMessage(st, failure(err))
			}
		}
	default:
		return protocol.WriteMessage(st, failure(fmt.Errorf("feature.network.incoming.mode %q: want mirror, steal or off", mode)))
	}
	if err := protocol.WriteMessage(st, protocol.Response{}); err != nil {
		return err
	}
	// Subscribed until the session closes the stream (or the connection goes).
	_, _ = io.Copy(io.Discard, st)
	return nil
}

type deliverFunc func(kind protocol.IncomingKind, client, server string) (*yamux.Stream, error)

// stealWhole hands a whole stolen connection to the session.
func stealWhole(c net.Conn, orig netip.AddrPort, deliver deliverFunc) {
	defer c.Close()
	s, err := deliver(protocol.IncomingConn, c.RemoteAddr().String(), orig.String())
	if err != nil {
		return
	}
	defer s.Close()
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = protocol.Copy(s, c)
		_ = s.Close()
	})
	_, _ = protocol.Copy(c, s)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	wg.Wait()
}

// requestRelay answers a matched request through the session: one stream per request.
func requestRelay(c net.Conn, orig netip.AddrPort, deliver deliverFunc) steal.RoundTripFunc {
	return func(r *http.Request) (*http.Response, error) {
		s, err := deliver(protocol.IncomingRequest, c.RemoteAddr().String(), orig.String())
		if err != nil {
			return nil, err
		}
		if err := protocol.WriteBuffered(s, r.Write); err != nil {
			s.Close()
			return nil, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(s), r)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("the session's answer: %w", err)
		}
		resp.Body = &closeBoth{ReadCloser: resp.Body, s: s}
		return resp, nil
	}
}

// closeBoth closes the request's stream with the response body.
type closeBoth struct {
	io.ReadCloser
	s *yamux.Stream
}

func (c *closeBoth) Close() error {
	err := c.ReadCloser.Close()
	_ = c.s.Close()
	return err
}
