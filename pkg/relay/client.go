package relay

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/yamux"
	"k8s.io/client-go/rest"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// Heartbeater is session.KeepAlive's heartbeat for a CLI: Heartbeat through the API server
// cfg names to the relay of the Primary controller in controllerNS.
func Heartbeater(cfg *rest.Config, controllerNS string, session *mirrordv1alpha1.MirrordSession, key ed25519.PrivateKey) func(context.Context) error {
	return func(ctx context.Context) error {
		err := Heartbeat(ctx, cfg, ServicePath(controllerNS), session, key)
		if ue := (*UpgradeError)(nil); errors.As(err, &ue) {
			return describeDialError(ue, controllerNS)
		}
		return err
	}
}

// Heartbeat tells the Primary's relay that the session whose key is key is alive: path is
// ServicePath of the Primary controller's namespace (through the API server cfg names), or
// Path straight to a relay.
func Heartbeat(ctx context.Context, cfg *rest.Config, path string, session *mirrordv1alpha1.MirrordSession, key ed25519.PrivateKey) error {
	conn, err := Dial(ctx, cfg, path)
	if err != nil {
		return fmt.Errorf("connecting to the Primary's relay: %w", err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	sess, err := protocol.Dial(conn, protocol.Hello{Kind: protocol.HelloHeartbeat, Session: session.Namespace + "/" + session.Name}, key)
	if err != nil {
		return err
	}
	return sess.Close()
}

// DialSession connects a CLI to its session on the Primary, through the API server:
// controllerNS is the Primary controller's namespace, key the session key. The client
// reconnects by itself when the connection drops (events hears of it) until it is closed.
func DialSession(ctx context.Context, cfg *rest.Config, controllerNS string, session *mirrordv1alpha1.MirrordSession, key ed25519.PrivateKey, events func(protocol.ConnEvent)) (*protocol.Client, error) {
	hello := protocol.Hello{Kind: protocol.HelloSession, Session: session.Namespace + "/" + session.Name}
	dial := func(ctx context.Context) (*yamux.Session, error) {
		conn, err := DialWaiting(ctx, cfg, ServicePath(controllerNS), RestartWait)
		if err != nil {
			return nil, describeDialError(err, controllerNS)
		}
		sess, err := protocol.Dial(conn, hello, key)
		if err != nil {
			conn.Close()
			return nil, err
		}
		return sess, nil
	}
	sess, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	return protocol.NewReconnectingClient(sess, dial, events), nil
}

// RestartWait bounds how long a connection waits for a restarting relay.
const RestartWait = 60 * time.Second

// DialWaiting is Dial, waiting up to wait for a relay that is restarting (its controller
// killed, or upgraded, has no ready endpoint for a few seconds) instead of failing at once.
func DialWaiting(ctx context.Context, cfg *rest.Config, path string, wait time.Duration) (net.Conn, error) {
	conn, err := Dial(ctx, cfg, path)
	for pause, deadline := 250*time.Millisecond, time.Now().Add(wait); err != nil && Restarting(err) && time.Now().Before(deadline); pause = min(2*pause, 2*time.Second) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		conn, err = Dial(ctx, cfg, path)
	}
	return conn, err
}

// Restarting says whether a failed connection to a relay is one a restarting relay gives: no
// ready endpoint behind its Service, or the API server's proxy not reaching it (502, 504, or
// a 500 "error dialing backend": the endpoint still listed while its process is down, right
// after a kill -9).
func Restarting(err error) bool {
	var ue *UpgradeError
	if !errors.As(err, &ue) {
		return false
	}
	switch ue.Status {
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	case http.StatusInternalServerError:
		return strings.Contains(ue.Body, "error dialing backend")
	}
	return false
}

// describeDialError turns a failed connection to the Primary's relay (in namespace
// controllerNS) into what to do.
func describeDialError(err error, controllerNS string) error {
	var ue *UpgradeError
	switch {
	case errors.As(err, &ue) && ue.Status == http.StatusForbidden:
		return fmt.Errorf("not allowed to connect to the relay (%v): ask an admin to install the primary overlay, which lets users connect to service %s/%s", err, controllerNS, ServiceName)
	case errors.As(err, &ue) && ue.Status == http.StatusServiceUnavailable:
		return fmt.Errorf("the Primary's relay is not running (%w): check `kubectl -n %s get pods`", err, controllerNS)
	}
	return fmt.Errorf("connecting to the Primary's relay: %w", err)
}
