package session

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"k8s.io/client-go/rest"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/clients"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/relay"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/target"
)

// StartOptions say which session to start, where, and how to tell the user.
type StartOptions struct {
	// Config reaches the Primary; Clients are its clients.
	Config  *rest.Config
	Clients clients.Set
	// Namespace and Name are the session's (an empty Name is generated); Spec its spec, owner
	// included (Whoami, Owner.Own).
	Namespace, Name string
	Spec            mirrordv1alpha1.MirrordSessionSpec
	// MirrordNamespace is the Primary controller's namespace, whose relay takes heartbeats.
	MirrordNamespace string
	// Timeout bounds the wait for the session to become ready.
	Timeout time.Duration
	// Progress gets a line per cluster as it changes; Logf what happens to the session.
	Progress io.Writer
	Logf     func(format string, args ...any)
}

// Started is a ready session this process owns and keeps alive until End.
type Started struct {
	// Session is the session as it was when it became ready; Key its key.
	Session *mirrordv1alpha1.MirrordSession
	Key     ed25519.PrivateKey
	// StartedAt is when it was created.
	StartedAt time.Time

	opts  StartOptions
	stop  context.CancelFunc
	ended chan struct{}
	why   error
	once  sync.Once
	err   error
}

// Start creates the session, keeps it alive with heartbeats through the Primary's relay from
// then on (while it starts, too), and waits until it is ready. From its creation on, every
// error ends it; a kill -9 of this process leaves it to its TTL.
func Start(ctx context.Context, o StartOptions) (*Started, error) {
	spec := o.Spec
	features, err := ApplyProfile(ctx, o.Clients.Mirrord, o.Namespace, spec.Features)
	if err != nil {
		return nil, err
	}
	if features.Profile != "" {
		o.Logf("profile %s applied: incoming %s", features.Profile, features.Network.Incoming.Description())
	}
	spec.Features = features
	key, err := NewKey(&spec)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	s, err := Create(ctx, o.Clients.Mirrord, o.Namespace, o.Name, spec)
	if err != nil {
		return nil, err
	}
	o.Logf("session %s/%s created for %s", o.Namespace, s.Name, target.String(spec.Target))
	keepCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	st := &Started{Session: s, Key: key, StartedAt: began, opts: o, stop: stop, ended: make(chan struct{})}
	interval := st.HeartbeatInterval()
	go func() {
		beat := relay.Heartbeater(o.Config, o.MirrordNamespace, s, key)
		if err := KeepAlive(keepCtx, o.Clients.Mirrord, o.Namespace, s.Name, interval, beat); err != nil {
			st.why = fmt.Errorf("%w (by sessions kill, or it expired while this machine could not reach the cluster)", err)
			close(st.ended)
		}
	}()

	wctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	p := &Progress{Out: o.Progress}
	ready, err := Wait(wctx, o.Clients.Mirrord, o.Namespace, s.Name, p.Print)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("session %s not ready after %s: %s", s.Name, o.Timeout, p.Last)
		}
		st.endQuietly()
		return nil, err
	}
	if ready.Status.Phase == mirrordv1alpha1.SessionDegraded {
		o.Logf("going on without %s: the session is Degraded until they are back", Missing(ready))
	}
	st.Session = ready
	return st, nil
}

// Ended closes when someone else ended the session (sessions kill, or its TTL passed while
// this machine could not reach the cluster); EndedBecause then says so.
func (s *Started) Ended() <-chan struct{} { return s.ended }

// EndedBecause says why the session ended without End, once Ended has closed.
func (s *Started) EndedBecause() error { return s.why }

// HeartbeatInterval is how often the session is kept alive.
func (s *Started) HeartbeatInterval() time.Duration {
	return time.Duration(s.Session.Spec.TTLSeconds) * time.Second / 3
}

// Dial connects to the session through the Primary's relay; events hears of each drop and
// reconnection.
func (s *Started) Dial(ctx context.Context, events func(protocol.ConnEvent)) (*protocol.Client, error) {
	return relay.DialSession(ctx, s.opts.Config, s.opts.MirrordNamespace, s.Session, s.Key, events)
}

// End stops the heartbeats and deletes the session, once; later calls return the first
// call's result.
func (s *Started) End() error {
	s.once.Do(func() {
		s.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := End(ctx, s.opts.Clients.Mirrord, s.opts.Namespace, s.Session.Name); err != nil {
			s.err = fmt.Errorf("ending session %s: %w (it expires by itself %ds after the last heartbeat)", s.Session.Name, err, s.Session.Spec.TTLSeconds)
		}
	})
	return s.err
}

// endQuietly ends a session that never became ready, saying only what went wrong.
func (s *Started) endQuietly() {
	if err := s.End(); err != nil {
		s.opts.Logf("%v", err)
	}
}

// LogReconnects is a Dial's events as lines for the user: the drop, and the return.
func LogReconnects(logf func(format string, args ...any), ttlSeconds int32) func(protocol.ConnEvent) {
	return func(e protocol.ConnEvent) {
		if e.Err != nil {
			logf("%v: reconnecting (the session lasts %ds without heartbeats)", e.Err, ttlSeconds)
		} else {
			logf("reconnected to the session after %s; connections open at the drop were reset", e.Down.Round(100*time.Millisecond))
		}
	}
}
