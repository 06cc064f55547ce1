package relayserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/yamux"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/targets"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/credentials"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/relay"
)

// targetsTimeout bounds a member's answer to a targets query, the listing included.
const targetsTimeout = 10 * time.Second

// validTargetsQuery checks what a HelloTargets asks before anything is read for it.
func validTargetsQuery(q *protocol.TargetsQuery) error {
	if q == nil {
		return errors.New("a targets query names its namespace")
	}
	if errs := validation.IsDNS1123Label(q.Namespace); len(errs) > 0 {
		return fmt.Errorf("namespace %q: %v", q.Namespace, errs)
	}
	if len(q.Kinds) > len(targets.Order) {
		return fmt.Errorf("at most %d kinds, not %d", len(targets.Order), len(q.Kinds))
	}
	_, err := targets.Wanted(q.Kinds)
	return err
}

// acceptTargets checks a Primary's targets query: only the Primary this member registered may
// ask (the same token check as for child sessions), and only of a Workload cluster.
func (s *Server) acceptTargets(ctx context.Context, h protocol.Hello) error {
	if !s.Roles.Workload {
		return errors.New("this cluster is not a Workload cluster: it runs no targets")
	}
	if err := validTargetsQuery(h.Targets); err != nil {
		return err
	}
	return s.authorizeChild(ctx, h.Token)
}

// answerTargets lists the query's targets and writes them on a stream of its own.
func (s *Server) answerTargets(ctx context.Context, sess *yamux.Session, q protocol.TargetsQuery) {
	defer sess.Close()
	ctx, cancel := context.WithTimeout(ctx, targetsTimeout)
	defer cancel()
	answer, err := targets.List(ctx, s.Kube, s.ExcludedNamespaces, q)
	if err != nil {
		answer = protocol.TargetsAnswer{Problem: err.Error()}
	}
	st, err := sess.OpenStream()
	if err != nil {
		return
	}
	_ = st.SetDeadline(time.Now().Add(targetsTimeout))
	if err := protocol.WriteMessage(st, answer); err != nil {
		klog.FromContext(ctx).V(2).Info("Could not answer a targets query", "namespace", q.Namespace, "err", err)
	}
	// Half-close, and keep the connection until the Primary has read the answer and hangs up:
	// closing it at once could end the session before the Primary accepts the stream.
	_ = st.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(st, 1))
}

// AskTargets asks member cluster name's relay for the targets q names, with the Primary's
// credentials there: what `kubectl mirrord ls` shows of that cluster.
func (s *Server) AskTargets(ctx context.Context, cluster string, q protocol.TargetsQuery) (protocol.TargetsAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, targetsTimeout+5*time.Second)
	defer cancel()
	cfg, ns, err := s.memberConfig(ctx, cluster)
	if err != nil {
		return protocol.TargetsAnswer{}, err
	}
	sess, err := s.dialMember(ctx, cfg, ns, protocol.Hello{Kind: protocol.HelloTargets, Session: "targets of " + q.Namespace, Targets: &q})
	if err != nil {
		return protocol.TargetsAnswer{}, err
	}
	defer sess.Close()
	type result struct {
		a   protocol.TargetsAnswer
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := sess.AcceptStream()
		if err != nil {
			done <- result{err: fmt.Errorf("cluster %s gave no answer: %w", cluster, err)}
			return
		}
		defer st.Close()
		var a protocol.TargetsAnswer
		if err := protocol.ReadMessage(st, &a); err != nil {
			done <- result{err: fmt.Errorf("cluster %s's answer: %w", cluster, err)}
			return
		}
		if len(a.Targets) > mirrordv1alpha1.MaxTargetsPerQuery {
			a.Targets, a.Truncated = a.Targets[:mirrordv1alpha1.MaxTargetsPerQuery], true
		}
		done <- result{a: a}
	}()
	select {
	case r := <-done:
		return r.a, r.err
	case <-ctx.Done():
		return protocol.TargetsAnswer{}, fmt.Errorf("cluster %s did not answer in time: %w", cluster, ctx.Err())
	}
}

// ListOwnTargets answers q from this cluster itself (a Primary that is also a Workload).
func (s *Server) ListOwnTargets(ctx context.Context, q protocol.TargetsQuery) (protocol.TargetsAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, targetsTimeout)
	defer cancel()
	return targets.List(ctx, s.Kube, s.ExcludedNamespaces, q)
}

// memberRestartWait bounds how long the Primary waits for a member's restarting relay (its
// controller killed, or upgraded): less than a CLI waits for the Primary's.
const memberRestartWait = 30 * time.Second

// dialMember connects to a member's relay as its Primary: a token of the Primary's account
// there, for the relay's audience only and for minutes, shown in the Hello.
func (s *Server) dialMember(ctx context.Context, cfg *rest.Config, ns string, h protocol.Hello) (*yamux.Session, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	token, _, _, err := credentials.RequestToken(ctx, kube, ns, credentials.RelayTokenLifetime, credentials.RelayAudience)
	if err != nil {
		return nil, err
	}
	conn, err := relay.DialWaiting(ctx, cfg, relay.ServicePath(ns), memberRestartWait)
	if err != nil {
		return nil, err
	}
	h.Token = token
	return dialProtocol(conn, h)
}
