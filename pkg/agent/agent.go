package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/agentconfig"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/mirror"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/regex"
)

// Agent serves every session on one target container: the member controller runs one per
// target pod and container, and each session's connection names its features.
type Agent struct {
	cfg      Config
	procRoot string
	// handshakes bounds the connections on the session port that have not authenticated yet.
	handshakes *protocol.Handshakes
	// tls serves the session port; key authenticates its peers (protocol.AcceptAgent).
	tls *tls.Config
	key atomic.Pointer[[]byte]

	mu sync.Mutex
	// incoming counts each session's incoming subscriptions (MaxIncomingPerSession).
	incoming map[string]int
	target   *served // the located target process, nil until found
	// node is the node's addresses, for the steals of probed ports (nodeAddrs).
	nodeOnce sync.Once
	node     []netip.Addr
	nodeErr  error
	ready    error // nil when the target is found and held
	closed   bool
}

// New returns an agent for cfg.
func New(cfg Config) *Agent {
	tlsConfig, err := protocol.AgentServerTLS()
	if err != nil {
		panic(fmt.Sprintf("making the agent's TLS certificate: %v", err)) // crypto/rand failed
	}
	return &Agent{cfg: cfg, procRoot: "/proc", ready: errors.New("target not located yet"),
		handshakes: protocol.NewHandshakes(protocol.MaxConcurrentHandshakes), tls: tlsConfig}
}

// holdIncoming counts one more incoming subscription of session, refused beyond
// MaxIncomingPerSession: a steal takes one of the target's slots, which one session must not
// take from the others.
func (a *Agent) holdIncoming(session string) (release func(), err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.incoming[session] >= protocol.MaxIncomingPerSession {
		protocol.CountLimitHit(protocol.LimitIncoming)
		return nil, &protocol.LimitError{Name: protocol.LimitIncoming, Max: protocol.MaxIncomingPerSession,
			Hint: "this session already subscribes to the target's incoming traffic; end that subscription first"}
	}
	if a.incoming == nil {
		a.incoming = map[string]int{}
	}
	a.incoming[session]++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.incoming[session]--; a.incoming[session] <= 0 {
				delete(a.incoming, session)
			}
		})
	}, nil
}

// loadKey reads the agent key (the kubelet starts the agent once its Secret is mounted).
func (a *Agent) loadKey() error {
	if a.key.Load() != nil {
		return nil
	}
	key, err := agentconfig.ReadKey(a.cfg.KeyDir)
	if err != nil {
		return err
	}
	a.key.Store(&key)
	return nil
}

// Run locates the target, serves health endpoints, and follows the target's process until
// ctx ends. A hostNetwork target is refused at once.
func (a *Agent) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithValues("pod", a.cfg.TargetNamespace+"/"+a.cfg.TargetPod, "container", a.cfg.Container, "targetless", a.cfg.Targetless)
	if how, err := a.locate(ctx); errors.Is(err, ErrHostNetwork) {
		return err
	} else if err != nil {
		logger.Info("Target not found yet", "err", err, "how", how)
	} else {
		logger.Info("Target located", "pid", a.pid(), "how", how)
	}
	defer a.close()
	keyErr := a.loadKey()
	if keyErr != nil {
		logger.Info("No agent key yet", "err", keyErr)
	}

	srv := &http.Server{Addr: ":" + strconv.Itoa(HealthPort), Handler: a.healthMux(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- srv.ListenAndServe() }()
	sl, err := net.Listen("tcp", ":"+strconv.Itoa(SessionPort))
	if err != nil {
		return fmt.Errorf("session port: %w", err)
	}
	defer sl.Close()
	go func() {
		for {
			c, err := sl.Accept()
			if err != nil {
				errc <- fmt.Errorf("session port: %w", err)
				return
			}
			go func() {
				if err := a.ServeConn(ctx, c); err != nil {
					logger.Info("Session connection ended", "remote", c.RemoteAddr().String(), "err", err)
				}
			}()
		}
	}()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			return nil
		case err := <-errc:
			return err
		case <-t.C:
			if keyErr != nil {
				if keyErr = a.loadKey(); keyErr == nil {
					logger.Info("Agent key loaded")
				}
			}
			if !a.alive() {
				if how, err := a.locate(ctx); err != nil {
					if errors.Is(err, ErrHostNetwork) {
						return err
					}
					logger.Info("Target lost", "err", err, "how", how)
				} else {
					logger.Info("Target located", "pid", a.pid(), "how", how)
				}
			}
		}
	}
}

// locate finds and holds the target's process; how says how it was found, for the log.
func (a *Agent) locate(ctx context.Context) (how string, err error) {
	var t *served
	if a.cfg.Targetless {
		t, how = a.self(), "targetless: the agent serves from its own pod"
	} else {
		var c runtimeContainer
		var nsFile *os.File
		c, how, nsFile, err = openTarget(ctx, a.procRoot, a.cfg.RuntimeEndpoint, a.cfg.ContainerID)
		if err == nil {
			t = attach(c.PID, startTime(a.procRoot, c.PID), nsFile)
			t.env, t.hostname = c.Env, c.Hostname
			how += "; environment from " + t.envSource()
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.target.close()
	a.target, a.ready = t, err
	return how, err
}

// self is the agent's own process as a targetless session's "target": its network
// namespace (entered without setns), its files and its environment, less what the member
// controller set for the agent itself.
func (a *Agent) self() *served {
	pid := os.Getpid()
	ns := netns.Current()
	t := &served{pid: pid, start: startTime(a.procRoot, pid), ns: ns, mirror: mirror.NewHub(ns)}
	t.env = agentOwnEnvRemoved(os.Environ())
	t.hostname, _ = os.Hostname()
	return t
}

// agentOwnEnvRemoved drops the variables the member controller sets for the agent itself.
func agentOwnEnvRemoved(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if name == agentconfig.ConfigEnv || name == "GOMAXPROCS" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (a *Agent) pid() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.target == nil {
		return 0
	}
	return a.target.pid
}

// alive reports whether the located process still exists: its PID, with the start time it
// had (a PID the kernel gave another process since is not the target).
func (a *Agent) alive() bool {
	a.mu.Lock()
	t := a.target
	a.mu.Unlock()
	if t == nil {
		return false
	}
	return startTime(a.procRoot, t.pid) == t.start && t.start != 0
}

func (a *Agent) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.target.close()
	a.target = nil
	a.closed = true
}

func (a *Agent) healthMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	reg := prometheus.NewRegistry()
	reg.MustRegister(protocol.LimitCollectors()...)
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "kubectl_mirrord_agent_handshakes_refused_total",
		Help: "Session connections refused because protocol.MaxConcurrentHandshakes handshakes were running.",
	}, func() float64 { return float64(a.handshakes.Refused()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "kubectl_mirrord_agent_regex_timeouts_total",
		Help: "HTTP filter matches that needed backtracking and ran out of regex.MatchTimeout or its stack (each counted as no match).",
	}, func() float64 { return float64(regex.TimedOut()) }))
	m.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		err := a.ready
		a.mu.Unlock()
		if err == nil && a.key.Load() == nil {
			err = errors.New("no agent key yet")
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return m
}
