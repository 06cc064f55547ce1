package relay

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/member"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/primary"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// primaryRoute sends a session's operations to its member clusters' relays: stateful ones
// to the Default cluster, incoming subscriptions to every Workload cluster.
type primaryRoute struct {
	s *Server

	mu      sync.Mutex
	session *mirrordv1alpha1.MirrordSession
	fetched time.Time
	members map[string]Upstream
	self    *memberRoute
}

// clusters is the session's clusters as its status says now (re-read at most once a
// second): a Workload cluster whose target gets its first pod while the session runs is
// subscribed by the next follow round.
func (r *primaryRoute) clusters(ctx context.Context) []mirrordv1alpha1.SessionClusterStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.fetched) > agentsCacheFor {
		if sess, err := r.s.Mirrord.MirrordV1alpha1().MirrordSessions(r.session.Namespace).Get(ctx, r.session.Name, metav1.GetOptions{}); err == nil {
			r.session = sess
		}
		r.fetched = time.Now()
	}
	return r.session.Status.Clusters
}

func (r *primaryRoute) Stateful(ctx context.Context) (Upstream, error) {
	for _, c := range r.clusters(ctx) {
		if hasRole(c.Roles, mirrordv1alpha1.ClusterRoleDefault) {
			if self := r.selfRoute(c); self != nil {
				return self.Stateful(ctx)
			}
			return r.member(ctx, c)
		}
	}
	return Upstream{}, fmt.Errorf("session %s/%s has no Default cluster", r.session.Namespace, r.session.Name)
}

func (r *primaryRoute) Incoming(ctx context.Context) ([]Upstream, error) {
	var ups []Upstream
	for _, c := range r.clusters(ctx) {
		if !hasRole(c.Roles, mirrordv1alpha1.ClusterRoleWorkload) || c.Agents == 0 {
			continue // a Workload cluster without target pods has nothing to intercept
		}
		if self := r.selfRoute(c); self != nil {
			agents, err := self.Incoming(ctx)
			if err != nil {
				return nil, err
			}
			ups = append(ups, agents...)
			continue
		}
		up, err := r.member(ctx, c)
		if err != nil {
			return nil, err
		}
		ups = append(ups, up)
	}
	sortUpstreams(ups)
	return ups, nil
}

// selfRoute is the route to this cluster's own agents when c is this Primary's own part of
// the session: straight to the agents, without a hop through its own member relay.
func (r *primaryRoute) selfRoute(c mirrordv1alpha1.SessionClusterStatus) *memberRoute {
	if c.Name != r.s.Roles.ClusterName || !(r.s.Roles.Workload || r.s.Roles.Default) || c.ChildName == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.self == nil || r.self.name != c.ChildName {
		r.self = &memberRoute{s: r.s, namespace: r.s.Namespace, name: c.ChildName}
	}
	return r.self
}

// member builds (once) the upstream of one member cluster's relay.
func (r *primaryRoute) member(ctx context.Context, c mirrordv1alpha1.SessionClusterStatus) (Upstream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if up, ok := r.members[c.Name]; ok {
		return up, nil
	}
	if c.ChildName == "" {
		return Upstream{}, fmt.Errorf("cluster %s has no child session yet", c.Name)
	}
	mc, err := r.s.Mirrord.MirrordV1alpha1().MirrordClusters().Get(ctx, c.Name, metav1.GetOptions{})
	if err != nil {
		return Upstream{}, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	secret, err := r.s.Kube.CoreV1().Secrets(r.s.Namespace).Get(ctx, mc.Spec.SecretRef.Name, metav1.GetOptions{})
	if err != nil {
		return Upstream{}, fmt.Errorf("cluster %s's credentials: %w", c.Name, err)
	}
	cfg, err := primary.RESTConfigFor(mc, secret)
	if err != nil {
		return Upstream{}, err
	}
	ns, token := mc.Spec.Namespace, cfg.BearerToken
	if ns == "" {
		ns = "mirrord-system"
	}
	path := ServicePath(ns)
	hello := protocol.Hello{Kind: protocol.HelloClusterSession, Session: ns + "/" + c.ChildName, Token: token}
	up := Upstream{
		Key: c.Name, Describe: "cluster " + c.Name,
		Dial: func(ctx context.Context) (*yamux.Session, error) {
			conn, err := Dial(ctx, cfg, path)
			if err != nil {
				return nil, err
			}
			return dialProtocol(conn, hello)
		},
	}
	r.members[c.Name] = up
	return up, nil
}

func hasRole(rs []mirrordv1alpha1.ClusterRole, r mirrordv1alpha1.ClusterRole) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// memberRoute sends a child session's operations to its agents: stateful ones to the first
// ready agent, incoming subscriptions to every ready agent.
type memberRoute struct {
	s               *Server
	namespace, name string

	mu      sync.Mutex
	agents  []mirrordv1alpha1.Agent
	fetched time.Time
}

// agentsCacheFor bounds how stale the list of agents may be: file operations do not each
// cost an API request.
const agentsCacheFor = time.Second

func (r *memberRoute) readyAgents(ctx context.Context) ([]mirrordv1alpha1.Agent, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.fetched) > agentsCacheFor {
		child, err := r.s.Mirrord.MirrordV1alpha1().MirrordClusterSessions(r.namespace).Get(ctx, r.name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("child session %s/%s: %w", r.namespace, r.name, err)
		}
		r.agents = nil
		for _, a := range child.Status.Agents {
			if a.Ready && a.Address != "" && a.Job != "" {
				r.agents = append(r.agents, a)
			}
		}
		r.fetched = time.Now()
	}
	return r.agents, nil
}

func (r *memberRoute) upstream(a mirrordv1alpha1.Agent) Upstream {
	hello := protocol.Hello{Session: r.namespace + "/" + r.name}
	return Upstream{
		Key: a.Pod + "/" + a.Job, Describe: "the agent of pod " + a.Pod,
		Dial: func(ctx context.Context) (*yamux.Session, error) {
			key, err := r.s.AgentKey(ctx)
			if err != nil {
				return nil, err
			}
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", a.Address)
			if err != nil {
				return nil, err
			}
			h := hello
			h.Token = member.AgentToken(key, a.Job)
			return dialProtocol(conn, h)
		},
	}
}

func (r *memberRoute) Stateful(ctx context.Context) (Upstream, error) {
	agents, err := r.readyAgents(ctx)
	if err != nil {
		return Upstream{}, err
	}
	if len(agents) == 0 {
		return Upstream{}, fmt.Errorf("no agent of child session %s/%s is ready", r.namespace, r.name)
	}
	// Agents are sorted by pod: every operation goes to the same one while it lives.
	return r.upstream(agents[0]), nil
}

func (r *memberRoute) Incoming(ctx context.Context) ([]Upstream, error) {
	agents, err := r.readyAgents(ctx)
	if err != nil {
		return nil, err
	}
	ups := make([]Upstream, 0, len(agents))
	for _, a := range agents {
		ups = append(ups, r.upstream(a))
	}
	return ups, nil
}
