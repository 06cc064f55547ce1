package relayserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/credentials"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// ErrSessionEnded says the session a relay connection serves was deleted: the connection is
// closed, so the agents, which outlive any one session, let go of its traffic at once.
var ErrSessionEnded = errors.New("the session ended")

// primaryRoute sends a session's operations to its member clusters' relays: stateful ones
// to the Default cluster, incoming subscriptions to every Workload cluster.
type primaryRoute struct {
	s *Server

	mu      sync.Mutex
	session *mirrordv1alpha1.MirrordSession
	fetched time.Time
	ended   bool
	members map[string]Upstream
	self    *memberRoute
}

// clusters is the session's clusters as its status says now (re-read at most once a
// second): a Workload cluster whose target gets its first pod while the session runs is
// subscribed by the next follow round.
func (r *primaryRoute) clusters(ctx context.Context) ([]mirrordv1alpha1.SessionClusterStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.fetched) > agentsCacheFor && !r.ended {
		sess, err := r.s.Mirrord.MirrordV1alpha1().MirrordSessions(r.session.Namespace).Get(ctx, r.session.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) || (err == nil && sess.UID != r.session.UID):
			r.ended = true
		case err == nil:
			r.session = sess
			r.ended = sess.DeletionTimestamp != nil
		}
		r.fetched = time.Now()
	}
	if r.ended {
		return nil, fmt.Errorf("session %s/%s: %w", r.session.Namespace, r.session.Name, ErrSessionEnded)
	}
	return r.session.Status.Clusters, nil
}

func (r *primaryRoute) Stateful(ctx context.Context) (Upstream, error) {
	clusters, err := r.clusters(ctx)
	if err != nil {
		return Upstream{}, err
	}
	c, ok := statefulCluster(clusters)
	if !ok {
		return Upstream{}, fmt.Errorf("session %s/%s has no Default cluster", r.session.Namespace, r.session.Name)
	}
	if self := r.selfRoute(c); self != nil {
		return self.Stateful(ctx)
	}
	return r.member(ctx, c)
}

// statefulCluster is the cluster that answers a session's env, files, DNS and outgoing
// traffic: its Default cluster.
func statefulCluster(clusters []mirrordv1alpha1.SessionClusterStatus) (mirrordv1alpha1.SessionClusterStatus, bool) {
	for _, c := range clusters {
		if hasRole(c.Roles, mirrordv1alpha1.ClusterRoleDefault) {
			return c, true
		}
	}
	return mirrordv1alpha1.SessionClusterStatus{}, false
}

// incomingClusters are the clusters a session's incoming subscription goes to: every
// Workload cluster with agents (one without target pods has nothing to intercept).
func incomingClusters(clusters []mirrordv1alpha1.SessionClusterStatus) []mirrordv1alpha1.SessionClusterStatus {
	var out []mirrordv1alpha1.SessionClusterStatus
	for _, c := range clusters {
		if hasRole(c.Roles, mirrordv1alpha1.ClusterRoleWorkload) && c.Agents > 0 {
			out = append(out, c)
		}
	}
	return out
}

func (r *primaryRoute) Incoming(ctx context.Context) ([]Upstream, error) {
	clusters, err := r.clusters(ctx)
	if err != nil {
		return nil, err
	}
	var ups []Upstream
	for _, c := range incomingClusters(clusters) {
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

// member builds (once) the upstream of one member cluster's relay. Each dial reads the
// cluster's credentials afresh (the Primary renews them) and shows the member's relay a
// token of its own, for the relay's audience only and for minutes.
func (r *primaryRoute) member(ctx context.Context, c mirrordv1alpha1.SessionClusterStatus) (Upstream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if up, ok := r.members[c.Name]; ok {
		return up, nil
	}
	if c.ChildName == "" {
		return Upstream{}, fmt.Errorf("cluster %s has no child session yet", c.Name)
	}
	up := Upstream{
		Key: c.Name, Describe: "cluster " + c.Name,
		Dial: func(ctx context.Context) (*yamux.Session, error) {
			cfg, ns, err := r.s.memberConfig(ctx, c.Name)
			if err != nil {
				return nil, err
			}
			sess, err := r.s.dialMember(ctx, cfg, ns, protocol.Hello{Kind: protocol.HelloClusterSession, Session: ns + "/" + c.ChildName})
			if err != nil {
				return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
			}
			return sess, nil
		},
	}
	r.members[c.Name] = up
	return up, nil
}

// memberConfig is the client config of member cluster name and its controller's namespace.
func (s *Server) memberConfig(ctx context.Context, name string) (*rest.Config, string, error) {
	mc, err := s.Mirrord.MirrordV1alpha1().MirrordClusters().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("cluster %s: %w", name, err)
	}
	secret, err := s.Kube.CoreV1().Secrets(s.Namespace).Get(ctx, mc.Spec.SecretRef.Name, metav1.GetOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("cluster %s's credentials: %w", name, err)
	}
	cfg, err := credentials.RESTConfig(mc, secret)
	if err != nil {
		return nil, "", err
	}
	ns := mc.Spec.Namespace
	if ns == "" {
		ns = "mirrord-system"
	}
	return cfg, ns, nil
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
// ready agent, incoming subscriptions to every ready agent. Agents serve every session on
// their pod; each connection's Hello names this child and the features it may use.
type memberRoute struct {
	s               *Server
	namespace, name string

	mu       sync.Mutex
	uid      string // the child's, from the first read: a new child of the same name is another session
	agents   []mirrordv1alpha1.Agent
	features *mirrordv1alpha1.Features
	fetched  time.Time
	ended    bool
}

// agentsCacheFor bounds how stale the list of agents may be: file operations do not each
// cost an API request.
const agentsCacheFor = time.Second

func (r *memberRoute) readyAgents(ctx context.Context) ([]mirrordv1alpha1.Agent, *mirrordv1alpha1.Features, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.fetched) > agentsCacheFor && !r.ended {
		child, err := r.s.Mirrord.MirrordV1alpha1().MirrordClusterSessions(r.namespace).Get(ctx, r.name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			r.ended = true
		case err != nil:
			return nil, nil, fmt.Errorf("child session %s/%s: %w", r.namespace, r.name, err)
		case r.uid != "" && string(child.UID) != r.uid:
			r.ended = true
		default:
			r.uid = string(child.UID)
			r.ended = child.DeletionTimestamp != nil
			r.agents, r.features = nil, child.Status.Features
			for _, a := range child.Status.Agents {
				if a.Ready && a.Address != "" && a.Job != "" {
					r.agents = append(r.agents, a)
				}
			}
		}
		r.fetched = time.Now()
	}
	if r.ended {
		return nil, nil, fmt.Errorf("child session %s/%s: %w", r.namespace, r.name, ErrSessionEnded)
	}
	if r.features == nil && len(r.agents) > 0 {
		return nil, nil, fmt.Errorf("child session %s/%s does not say which features its agents may serve yet", r.namespace, r.name)
	}
	return r.agents, r.features, nil
}

func (r *memberRoute) upstream(a mirrordv1alpha1.Agent, features *mirrordv1alpha1.Features) Upstream {
	hello := protocol.Hello{Session: r.namespace + "/" + r.name, Features: features}
	return Upstream{
		Key: a.Pod + "/" + a.Job, Describe: "the agent of pod " + a.Pod,
		Dial: func(ctx context.Context) (*yamux.Session, error) {
			key, err := r.agentKey(ctx, a)
			if err != nil {
				return nil, err
			}
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", a.Address)
			if err != nil {
				return nil, err
			}
			sess, err := protocol.DialAgent(tls.Client(conn, protocol.AgentClientTLS()), hello, key)
			if err != nil {
				conn.Close()
				return nil, err
			}
			return sess, nil
		},
	}
}

// agentKey reads the key of agent a from the Secret its pod mounts (agentconfig.ReadKey's
// other side), once per connection to the agent. A targetless agent's Job is in the
// session's namespace, where the relay reads nothing: its key's copy in the controller's
// namespace has the Job's name.
func (r *memberRoute) agentKey(ctx context.Context, a mirrordv1alpha1.Agent) ([]byte, error) {
	job, name := a.Job, a.Job
	if a.Namespace == "" || a.Namespace == r.s.Namespace {
		j, err := r.s.Kube.BatchV1().Jobs(r.s.Namespace).Get(ctx, job, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("agent Job %s: %w", job, err)
		}
		if name = agentconfig.KeySecretOf(j.Spec.Template.Spec); name == "" {
			return nil, fmt.Errorf("agent Job %s mounts no key", job)
		}
	}
	s, err := r.s.Kube.CoreV1().Secrets(r.s.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("the key of agent Job %s: %w", job, err)
	}
	key := s.Data[agentconfig.KeyFile]
	if len(key) != protocol.AgentKeySize {
		return nil, fmt.Errorf("Secret %s holds no key of agent Job %s", name, job)
	}
	return key, nil
}

func (r *memberRoute) Stateful(ctx context.Context) (Upstream, error) {
	agents, features, err := r.readyAgents(ctx)
	if err != nil {
		return Upstream{}, err
	}
	if len(agents) == 0 {
		return Upstream{}, fmt.Errorf("no agent of child session %s/%s is ready", r.namespace, r.name)
	}
	// Agents are sorted by pod: every operation goes to the same one while it lives.
	return r.upstream(agents[0], features), nil
}

func (r *memberRoute) Incoming(ctx context.Context) ([]Upstream, error) {
	agents, features, err := r.readyAgents(ctx)
	if err != nil {
		return nil, err
	}
	ups := make([]Upstream, 0, len(agents))
	for _, a := range agents {
		ups = append(ups, r.upstream(a, features))
	}
	return ups, nil
}
