package relayserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/hashicorp/yamux"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1ac "k8s.io/client-go/applyconfigurations/coordination/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/authz"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/naming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/roles"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/credentials"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/relay"
)

// Server is a controller's relay: as the Primary it serves CLIs' sessions, as a member the
// Primary's connections for child sessions. Every replica serves it (it keeps no state but
// the connections), so a relay never waits for a leader.
type Server struct {
	Kube      kubernetes.Interface
	Mirrord   versioned.Interface
	Namespace string
	Roles     roles.Roles
	// Addr is the listen address; its port is also how the Primary reaches itself.
	Addr string
	// ExcludedNamespaces are the namespaces this member's admin keeps sessions out of; a
	// Primary's targets query for one of them gets no answer.
	ExcludedNamespaces []string
}

// handshakes bounds the relay's unauthenticated connections, across every Server of the
// process (there is one), so the controller's metrics can read what it refused.
var handshakes = protocol.NewHandshakes(protocol.MaxConcurrentHandshakes)

// HandshakesRefused is the relay connections refused so far for being over the limit.
func HandshakesRefused() int64 { return handshakes.Refused() }

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	tlsConfig, err := protocol.SelfSignedTLS("kubectl-mirrord-relay")
	if err != nil {
		return err
	}
	tlsConfig.NextProtos = []string{"http/1.1"} // upgrades are HTTP/1.1
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return err
	}
	ln = tls.NewListener(ln, tlsConfig)
	mux := http.NewServeMux()
	mux.Handle("GET "+relay.InfoPath, s.infoHandler(infoOf(s.Roles, s.Namespace)))
	mux.Handle("/", upgradeHandler(func(c net.Conn) { s.serveConn(ctx, c) }))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second, // also bounds the TLS handshake
		IdleTimeout:       30 * time.Second,
		ConnState:         limitPending(protocol.MaxPendingConns),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	klog.FromContext(ctx).Info("Relay listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) serveConn(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	logger := klog.FromContext(ctx)
	var route Route
	hello, sess, err := handshakes.Accept(conn, func(h protocol.Hello, nonce []byte) error {
		var err error
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		switch h.Kind {
		case protocol.HelloSession:
			route, err = s.acceptSession(cctx, h, nonce)
		case protocol.HelloClusterSession:
			route, err = s.acceptChild(cctx, h)
		case protocol.HelloHeartbeat:
			err = s.acceptHeartbeat(cctx, h, nonce)
		case protocol.HelloTargets:
			err = s.acceptTargets(cctx, h)
		default:
			err = fmt.Errorf("a relay serves sessions and child sessions, not %q", h.Kind)
		}
		return err
	})
	if errors.Is(err, protocol.ErrBusy) {
		if n := handshakes.Refused(); n%100 == 1 { // a flood: say so, not once per connection
			logger.Info("Refusing relay connections: too many handshakes at once", "limit", protocol.MaxConcurrentHandshakes, "refused", n)
		}
		return
	}
	if err != nil {
		logger.V(2).Info("Refused a relay connection", "session", hello.Session, "kind", hello.Kind, "err", err)
		return
	}
	if hello.Kind == protocol.HelloHeartbeat {
		_ = sess.Close() // recorded in the handshake: nothing more to serve
		return
	}
	if hello.Kind == protocol.HelloTargets {
		s.answerTargets(ctx, sess, *hello.Targets)
		return
	}
	logger.V(2).Info("Relaying", "session", hello.Session, "kind", hello.Kind)
	Serve(ctx, sess, route)
	logger.V(2).Info("Relay connection ended", "session", hello.Session, "kind", hello.Kind)
}

func splitName(s string) (ns, name string, err error) {
	for i := range len(s) {
		if s[i] == '/' {
			if i > 0 && i < len(s)-1 {
				return s[:i], s[i+1:], nil
			}
			break
		}
	}
	return "", "", fmt.Errorf("session %q: want namespace/name", s)
}

// acceptSession checks a CLI's Hello: the session exists, is ready, and the Hello proves
// possession of its key.
func (s *Server) acceptSession(ctx context.Context, h protocol.Hello, nonce []byte) (Route, error) {
	if !s.Roles.Primary {
		return nil, errors.New("this cluster is not the Primary: use the Primary's kubeconfig context")
	}
	ns, name, err := splitName(h.Session)
	if err != nil {
		return nil, err
	}
	sess, err := s.Mirrord.MirrordV1alpha1().MirrordSessions(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", h.Session, err)
	}
	if err := protocol.VerifyProof(sess.Spec.PublicKey, nonce, h.Session, h.Proof); err != nil {
		return nil, err
	}
	switch sess.Status.Phase {
	case mirrordv1alpha1.SessionReady, mirrordv1alpha1.SessionDegraded:
	default:
		return nil, fmt.Errorf("session %s is %s, not Ready", h.Session, sess.Status.Phase)
	}
	return &primaryRoute{s: s, session: sess, fetched: time.Now(), members: map[string]Upstream{}}, nil
}

// acceptHeartbeat checks a CLI's heartbeat, which proves possession of the session's key, and
// renews the session's Lease with this server's time: the Primary's controller ends a session
// whose Lease it has not seen renewed for its TTL. The client's clock plays no part.
func (s *Server) acceptHeartbeat(ctx context.Context, h protocol.Hello, nonce []byte) error {
	if !s.Roles.Primary {
		return errors.New("this cluster is not the Primary: use the Primary's kubeconfig context")
	}
	ns, name, err := splitName(h.Session)
	if err != nil {
		return err
	}
	sess, err := s.Mirrord.MirrordV1alpha1().MirrordSessions(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("session %s: %w", h.Session, err)
	}
	if err := protocol.VerifyProof(sess.Spec.PublicKey, nonce, h.Session, h.Proof); err != nil {
		return err
	}
	if sess.DeletionTimestamp != nil {
		return fmt.Errorf("session %s: %w", h.Session, errEnded)
	}
	lease := coordinationv1ac.Lease(naming.SessionLease(sess.UID), s.Namespace).
		WithLabels(map[string]string{
			mirrordv1alpha1.LabelParentUID:       string(sess.UID),
			mirrordv1alpha1.LabelParentNamespace: sess.Namespace,
			mirrordv1alpha1.LabelParentName:      sess.Name,
		}).
		WithSpec(coordinationv1ac.LeaseSpec().
			WithHolderIdentity(sess.Namespace + "/" + sess.Name).
			WithLeaseDurationSeconds(sess.Spec.TTLSeconds).
			WithRenewTime(metav1.NewMicroTime(time.Now())))
	if _, err := s.Kube.CoordinationV1().Leases(s.Namespace).Apply(ctx, lease, metav1.ApplyOptions{FieldManager: "kubectl-mirrord-relay", Force: true}); err != nil {
		return fmt.Errorf("recording the heartbeat: %w", err)
	}
	return nil
}

// errEnded is a heartbeat's refusal for a session being removed.
var errEnded = errors.New("the session is being ended")

// acceptChild checks the Primary's Hello: a token the API server says is the Primary's. (When the Primary is also a member, it goes to its own agents directly.)
func (s *Server) acceptChild(ctx context.Context, h protocol.Hello) (Route, error) {
	if !s.Roles.Workload && !s.Roles.Default {
		return nil, errors.New("this cluster is not a member (Workload or Default)")
	}
	ns, name, err := splitName(h.Session)
	if err != nil {
		return nil, err
	}
	if ns != s.Namespace {
		return nil, fmt.Errorf("child sessions live in %s, not %s", s.Namespace, ns)
	}
	if err := s.authorizeChild(ctx, h.Token); err != nil {
		return nil, err
	}
	if _, err := s.Mirrord.MirrordV1alpha1().MirrordClusterSessions(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		return nil, fmt.Errorf("child session %s: %w", h.Session, err)
	}
	return &memberRoute{s: s, namespace: ns, name: name}, nil
}

// authorizeChild asks this cluster's API server who token belongs to: only the ServiceAccount
// this member made for its Primary may drive child sessions (authz.RelayPeer). Reading a
// child session is not enough: other accounts may be granted that.
func (s *Server) authorizeChild(ctx context.Context, token string) error {
	if token == "" {
		return errors.New("no token: only a Primary's controller may connect to a member's relay")
	}
	// Only a token for the relay's audience (credentials.RelayAudience): one the Primary shows
	// its API server is refused here, and one shown here is refused there.
	tr, err := s.Kube.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{
		Token: token, Audiences: []string{credentials.RelayAudience}}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("reviewing the token: %w", err)
	}
	if !tr.Status.Authenticated || !slices.Contains(tr.Status.Audiences, credentials.RelayAudience) {
		return fmt.Errorf("the token is not valid for this relay (%s): a Primary shows a token for audience %s, made for this connection; register the cluster on the Primary again if this persists", tr.Status.Error, credentials.RelayAudience)
	}
	if d := authz.RelayPeer(s.Namespace, tr.Status.User.Username); d != nil {
		return d
	}
	return nil
}

// dialProtocol runs the handshake on conn, closing it on failure.
func dialProtocol(conn net.Conn, h protocol.Hello) (*yamux.Session, error) {
	sess, err := protocol.Dial(conn, h, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return sess, nil
}
