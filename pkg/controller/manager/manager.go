// Package manager runs kubectl-mirrord's controllers in one process: it reads the
// installation's roles, serves metrics and health probes, elects a leader among replicas, and
// starts the Primary and member controllers the roles call for.
package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/clients"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/branchlife"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/member"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/primary"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/relayserver"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/roles"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/targetquery"
	mirrordinformers "github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/informers/externalversions"
)

// Config is everything the controller process is told by its flags.
type Config struct {
	// RolesDir is where the mirrord-roles ConfigMap is mounted.
	RolesDir string
	// Namespace is the controller's own namespace (from the downward API).
	Namespace string
	// PodName identifies this replica for leader election and finds its own image.
	PodName string
	// MetricsAddr and ProbeAddr are the listen addresses of /metrics and /healthz+/readyz.
	MetricsAddr, ProbeAddr string
	// Profiling serves Go's /debug/pprof on the metrics address.
	Profiling bool
	// RelayAddr is the listen address of the session relay, which every replica serves.
	RelayAddr string
	// LeaderElect makes replicas elect one active controller through a Lease.
	LeaderElect bool
	// AgentImage runs agents; empty means the controller's own image.
	AgentImage string
	// AgentDeadline bounds an agent Job's life.
	AgentDeadline time.Duration
	// AgentRuntimeEndpoint is the nodes' CRI socket, handed to agents; empty lets them find it.
	AgentRuntimeEndpoint string
	// AgentStealBackend is how agents redirect stolen ports (agentconfig.StealBackends).
	AgentStealBackend string
	// AgentMaxProcs is agents' GOMAXPROCS (member.DefaultAgentMaxProcs); 0 is Go's default.
	AgentMaxProcs int
	// DBImages are the database branches' images by engine (member.Options.DBImages).
	DBImages map[mirrordv1alpha1.DBEngine]string
	// Workers per controller.
	Workers int
	// ExcludedNamespaces are refused as targets' namespaces in this cluster, with the
	// controller's own namespace, which is always refused.
	ExcludedNamespaces []string
}

// excludedNamespaces is the configured list with the controller's own namespace first: its
// pods hold this cluster's and the Primary's credentials.
func excludedNamespaces(cfg Config) []string {
	out := []string{cfg.Namespace}
	for _, ns := range cfg.ExcludedNamespaces {
		if ns = strings.TrimSpace(ns); ns != "" && !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	return out
}

// LeaseName is the leader election Lease in the controller's namespace.
const LeaseName = "kubectl-mirrord-controller"

// Run runs the controller until ctx ends or it fails.
func Run(ctx context.Context, restCfg *rest.Config, cfg Config) error {
	logger := klog.FromContext(ctx)
	rs, err := roles.Load(cfg.RolesDir)
	if err != nil {
		return fmt.Errorf("invalid role configuration: %w", err)
	}
	if cfg.Namespace == "" {
		return errors.New("no namespace: set --namespace or POD_NAMESPACE")
	}
	restCfg = rest.CopyConfig(restCfg)
	restCfg.QPS, restCfg.Burst = 100, 200
	restCfg.UserAgent = "kubectl-mirrord-controller"
	cs, err := clients.ForConfig(restCfg)
	if err != nil {
		return err
	}
	kube, mirrord := cs.Kube, cs.Mirrord
	if cfg.AgentImage == "" && (rs.Workload || rs.Default) {
		if cfg.AgentImage, err = ownImage(ctx, kube, cfg.Namespace, cfg.PodName); err != nil {
			return fmt.Errorf("finding the agent image (set --agent-image): %w", err)
		}
	}
	logger.Info("Starting", "roles", rs.String(), "cluster", rs.ClusterName, "namespace", cfg.Namespace, "agentImage", cfg.AgentImage)

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(mirrordv1alpha1.AddToScheme(scheme))
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartStructuredLogging(3)
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme, corev1.EventSource{Component: "kubectl-mirrord-controller"})

	h := &health{}
	g, ctx := errgroup.WithContext(ctx)
	metrics := http.NewServeMux()
	metrics.Handle("/metrics", promhttp.HandlerFor(newRegistry(), promhttp.HandlerOpts{}))
	if cfg.Profiling {
		metrics.HandleFunc("/debug/pprof/", pprof.Index)
		metrics.HandleFunc("/debug/pprof/profile", pprof.Profile)
		metrics.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	serve(ctx, g, cfg.MetricsAddr, metrics)
	serve(ctx, g, cfg.ProbeAddr, h.mux())
	if cfg.RelayAddr != "" && cfg.RelayAddr != "0" {
		// The relay's own clients and rate limit: what any peer makes it ask the API server
		// before it has proved anything (a session's GET, a TokenReview) cannot slow the
		// controllers down.
		relayCfg := rest.CopyConfig(restCfg)
		relayCfg.QPS, relayCfg.Burst = 50, 100
		relayCfg.UserAgent = "kubectl-mirrord-relay"
		relayClients, err := clients.ForConfig(relayCfg)
		if err != nil {
			return err
		}
		rs := &relayserver.Server{Kube: relayClients.Kube, Mirrord: relayClients.Mirrord, Namespace: cfg.Namespace, Roles: rs, Addr: cfg.RelayAddr,
			ExcludedNamespaces: excludedNamespaces(cfg)}
		g.Go(func() error { return rs.Run(ctx) })
	}

	runControllers := func(ctx context.Context) error {
		strip := kubeinformers.WithTransform(stripManagedFields)
		kubeAll := kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0, strip)
		kubeOwn := kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0, strip, kubeinformers.WithNamespace(cfg.Namespace))
		mirrordAll := mirrordinformers.NewSharedInformerFactoryWithOptions(mirrord, 0, mirrordinformers.WithTransform(stripManagedFields))
		mirrordOwn := mirrordinformers.NewSharedInformerFactoryWithOptions(mirrord, 0, mirrordinformers.WithNamespace(cfg.Namespace), mirrordinformers.WithTransform(stripManagedFields))

		var runs []func(context.Context) error
		var labelsOf func(mirrordv1alpha1.Target) map[string]string
		if rs.Workload || rs.Default {
			mc, err := member.New(kube, mirrord, kubeAll, kubeOwn, mirrordAll, mirrordOwn, recorder, member.Options{
				Namespace: cfg.Namespace, Workers: cfg.Workers,
				ExcludedNamespaces: excludedNamespaces(cfg),
				Default:            rs.Default,
				Primary:            rs.Primary,
				ClusterName:        rs.ClusterName,
				DBImages:           cfg.DBImages,
				Agent: member.AgentOptions{Image: cfg.AgentImage, ActiveDeadline: cfg.AgentDeadline,
					RuntimeEndpoint: cfg.AgentRuntimeEndpoint, StealBackend: cfg.AgentStealBackend, MaxProcs: cfg.AgentMaxProcs},
			})
			if err != nil {
				return err
			}
			runs = append(runs, mc.Run)
			labelsOf = mc.TargetLabels
		}
		if rs.Primary {
			pc, err := primary.New(kube, mirrord, kubeOwn, mirrordAll, recorder, labelsOf, primary.Options{Namespace: cfg.Namespace, Roles: rs, Workers: cfg.Workers})
			if err != nil {
				return err
			}
			runs = append(runs, pc.Run)
			// `kubectl mirrord ls`: members are asked through their relays, as sessions are.
			asker := &relayserver.Server{Kube: kube, Mirrord: mirrord, Namespace: cfg.Namespace, Roles: rs, ExcludedNamespaces: excludedNamespaces(cfg)}
			tq, err := targetquery.New(kube, mirrord, mirrordAll, targetquery.Options{Roles: rs, Ask: asker.AskTargets, Own: asker.ListOwnTargets, Workers: 2})
			if err != nil {
				return err
			}
			runs = append(runs, tq.Run)
			bl, err := branchlife.New(mirrord, mirrordAll, recorder, nil)
			if err != nil {
				return err
			}
			runs = append(runs, bl.Run)
		}
		kubeAll.Start(ctx.Done())
		kubeOwn.Start(ctx.Done())
		mirrordAll.Start(ctx.Done())
		mirrordOwn.Start(ctx.Done())
		defer kubeAll.Shutdown()
		defer kubeOwn.Shutdown()
		defer mirrordAll.Shutdown()
		defer mirrordOwn.Shutdown()
		leaderGauge.Set(1)
		defer leaderGauge.Set(0)
		cg, ctx := errgroup.WithContext(ctx)
		for _, run := range runs {
			cg.Go(func() error { return run(ctx) })
		}
		return cg.Wait()
	}

	if !cfg.LeaderElect {
		g.Go(func() error { return runControllers(ctx) })
		return ignoreCanceled(g.Wait())
	}
	id := cfg.PodName
	if id == "" {
		id, _ = os.Hostname()
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, cfg.Namespace, LeaseName, kube.CoreV1(), kube.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: id, EventRecorder: recorder})
	if err != nil {
		return err
	}
	// Leadership lost (the API server was away longer than the renew deadline) stops the
	// controllers and campaigns again; the process stays up, so the relay and the sessions
	// it carries are not cut and the pod does not crash-loop into a restart back-off.
	g.Go(func() error {
		for {
			ran := make(chan error, 1) // the term's controllers' result, if it led
			var led atomic.Bool
			// A controller failing on its own ends the term (and the process, below).
			term, endTerm := context.WithCancel(ctx)
			le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
				Lock:            lock,
				LeaseDuration:   15 * time.Second,
				RenewDeadline:   10 * time.Second,
				RetryPeriod:     2 * time.Second,
				ReleaseOnCancel: true,
				Name:            LeaseName,
				Callbacks: leaderelection.LeaderCallbacks{
					// Called on a goroutine of its own; Run returns without waiting for it.
					OnStartedLeading: func(ctx context.Context) {
						led.Store(true)
						err := runControllers(ctx)
						ran <- err
						if err != nil {
							endTerm()
						}
					},
					OnStoppedLeading: func() { logger.Info("No longer the leader") },
					OnNewLeader:      func(identity string) { logger.Info("Leader", "identity", identity) },
				},
			})
			if err != nil {
				endTerm()
				return err
			}
			le.Run(term)
			endTerm()
			if led.Load() {
				// Run cancelled the term's context: wait until its controllers have stopped
				// before another term may start them again.
				select {
				case err := <-ran:
					if err != nil && !errors.Is(err, context.Canceled) {
						return err
					}
				case <-time.After(30 * time.Second):
					if ctx.Err() == nil {
						return errors.New("lost leadership and the controllers did not stop within 30s: exiting")
					}
				}
			}
			if ctx.Err() != nil {
				return nil
			}
			logger.Info("Lost leadership: controllers stopped; campaigning again (the relay keeps serving)")
		}
	})
	return ignoreCanceled(g.Wait())
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// serve runs an HTTP server on addr until ctx ends ("" or "0" disables it).
func serve(ctx context.Context, g *errgroup.Group, addr string, h http.Handler) {
	if addr == "" || addr == "0" {
		return
	}
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	g.Go(func() error { return ignoreCanceled(srv.ListenAndServe()) })
}

// stripManagedFields drops what the controllers never read, to keep the caches small.
func stripManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil && a.GetManagedFields() != nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}

// ownImage is the image of the controller container of this pod: agents run the same binary.
func ownImage(ctx context.Context, kube kubernetes.Interface, ns, pod string) (string, error) {
	if pod == "" {
		return "", errors.New("POD_NAME is not set")
	}
	p, err := kube.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	for _, c := range p.Spec.Containers {
		if c.Name == "controller" {
			return c.Image, nil
		}
	}
	return p.Spec.Containers[0].Image, nil
}
