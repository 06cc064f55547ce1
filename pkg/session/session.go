// Package session is the client side of a MirrordSession: create it on the Primary as the
// current user, wait for it with progress, keep it alive with heartbeats, and end it.
package session

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	toolswatch "k8s.io/client-go/tools/watch"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
)

// ErrFailed wraps the reason a session failed.
var ErrFailed = errors.New("session failed")

// Owner is who the API server knows the caller as: a session's owner, which admission
// binds to the creating user.
type Owner struct {
	Name   string
	Groups []string
}

// Whoami asks the API server who the caller is.
func Whoami(ctx context.Context, kube kubernetes.Interface) (Owner, error) {
	r, err := kube.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return Owner{}, fmt.Errorf("asking the API server who you are: %w", err)
	}
	return Owner{Name: r.Status.UserInfo.Username, Groups: r.Status.UserInfo.Groups}, nil
}

// NewKey makes the session's key: its public half goes into spec, and only the process that
// holds the private half can attach to the session or heartbeat it.
func NewKey(spec *mirrordv1alpha1.MirrordSessionSpec) (ed25519.PrivateKey, error) {
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	spec.PublicKey = base64.StdEncoding.EncodeToString(pub)
	return key, nil
}

// Own makes o the owner of spec.
func (o Owner) Own(spec *mirrordv1alpha1.MirrordSessionSpec) {
	spec.Owner, spec.OwnerGroups = o.Name, slices.Clone(o.Groups)
}

// Create creates a session named name, or after its owner and target when name is empty. Its
// creation counts as its first heartbeat.
func Create(ctx context.Context, c versioned.Interface, namespace, name string, spec mirrordv1alpha1.MirrordSessionSpec) (*mirrordv1alpha1.MirrordSession, error) {
	s := &mirrordv1alpha1.MirrordSession{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: namespace,
			// For `sessions -l` at once; the Primary's controller keeps them true to the spec.
			Labels: mirrordv1alpha1.SessionLabels(&spec),
			// No finalizer: the Primary's controller adds it before it creates any child, so a
			// session made while no controller runs can still be deleted (and its namespace).
		},
		Spec: spec,
	}
	if name == "" {
		s.GenerateName = generateName(spec)
	}
	created, err := c.MirrordV1alpha1().MirrordSessions(namespace).Create(ctx, s, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		owner := "someone"
		if old, gerr := c.MirrordV1alpha1().MirrordSessions(namespace).Get(ctx, name, metav1.GetOptions{}); gerr == nil {
			owner = old.Spec.Owner
		}
		return nil, fmt.Errorf("session %s/%s already exists (owner %s): pick another --name, or end that one first with `kubectl mirrord sessions kill %s -n %s`", namespace, name, owner, name, namespace)
	case apierrors.IsNotFound(err) && isNamespaceNotFound(err):
		return nil, fmt.Errorf("namespace %s does not exist on the Primary: a session lives in the Primary's namespace of the same name as the target's; ask an admin to create it (and bind mirrord-user there), or pick another with -n", namespace)
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("the MirrordSession API is not installed on this cluster: is it the Primary? An admin installs it with `kubectl mirrord install`: %w", err)
	case apierrors.IsForbidden(err) && admissionDenial(err) != "":
		return nil, fmt.Errorf("the Primary refused the session: %s", admissionDenial(err))
	case apierrors.IsForbidden(err):
		return nil, fmt.Errorf("not allowed to create sessions in namespace %s: ask an admin to bind the mirrord-user ClusterRole to you there: %w", namespace, err)
	case err != nil:
		return nil, fmt.Errorf("creating the session: %w", err)
	}
	return created, nil
}

// admissionDenial is the message of the admission policy that refused a request (who may
// target what, README "Security model"), or "" when RBAC refused it.
func admissionDenial(err error) string {
	const marker = "denied request: "
	msg := err.Error()
	if !strings.Contains(msg, "ValidatingAdmissionPolicy") {
		return ""
	}
	if _, after, ok := strings.Cut(msg, marker); ok {
		return after
	}
	return msg
}

func isNamespaceNotFound(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		d := status.Status().Details
		return d != nil && d.Kind == "namespaces"
	}
	return false
}

// generateName is "<owner>-<target>-": readable in `kubectl get mss`.
func generateName(spec mirrordv1alpha1.MirrordSessionSpec) string {
	owner := spec.Owner
	if i := strings.LastIndexAny(owner, ":/@"); i >= 0 {
		owner = owner[i+1:]
	}
	clean := func(s string) string {
		var b strings.Builder
		for _, r := range strings.ToLower(s) {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
				b.WriteRune(r)
			case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
				b.WriteRune('-')
			}
		}
		return strings.Trim(b.String(), "-")
	}
	name := clean(owner)
	if name != "" {
		name += "-"
	}
	switch {
	case spec.Target.IsTargetless():
		name += "targetless"
	case spec.Target.Name == "": // a Labels target
		name += strings.ToLower(string(spec.Target.Kind))
	default:
		name += clean(spec.Target.Name)
	}
	if len(name) > 40 {
		name = strings.TrimRight(name[:40], "-")
	}
	return name + "-"
}

// KeepAlive heartbeats every interval until ctx ends, with beat (relay.Heartbeat: the
// Primary's relay checks the session key and records the heartbeat by its own clock). It
// returns early only if the session is gone (someone ended it, or it expired). A failed
// heartbeat (a network blip, the Primary's controller restarting) is retried every second
// until one gets through: the session dies only when none does for its whole TTL.
func KeepAlive(ctx context.Context, c versioned.Interface, namespace, name string, interval time.Duration, beat func(context.Context) error) error {
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		// Bounded: through a dead network a request can hang for minutes.
		hctx, cancel := context.WithTimeout(ctx, min(interval, 5*time.Second))
		err := beat(hctx)
		if err != nil && ctx.Err() == nil {
			// Refused, or the relay could not be reached: is the session still there?
			_, gerr := c.MirrordV1alpha1().MirrordSessions(namespace).Get(hctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(gerr) {
				cancel()
				return fmt.Errorf("session %s/%s was ended", namespace, name)
			}
		}
		cancel()
		if err != nil {
			// Soon, and at a random moment: a network that comes and goes at a steady rhythm
			// (a flapping link) must not catch every retry in its down time.
			t.Reset(min(interval, 250*time.Millisecond+rand.N(500*time.Millisecond)))
		} else {
			t.Reset(interval)
		}
	}
}

// Wait watches the session until it is Ready (returned) or Failed (ErrFailed with the reason),
// calling progress on every change.
func Wait(ctx context.Context, c versioned.Interface, namespace, name string, progress func(*mirrordv1alpha1.MirrordSession)) (*mirrordv1alpha1.MirrordSession, error) {
	sessions := c.MirrordV1alpha1().MirrordSessions(namespace)
	lw := OneObject(name, sessions.List, sessions.Watch)
	var last *mirrordv1alpha1.MirrordSession
	_, err := toolswatch.UntilWithSync(ctx, lw, &mirrordv1alpha1.MirrordSession{}, nil, func(e watch.Event) (bool, error) {
		if e.Type == watch.Deleted {
			return false, fmt.Errorf("session %s/%s was deleted while starting", namespace, name)
		}
		s, ok := e.Object.(*mirrordv1alpha1.MirrordSession)
		if !ok {
			return false, nil
		}
		last = s
		if progress != nil {
			progress(s)
		}
		queuesReady, _ := QueuesReady(s)
		switch s.Status.Phase {
		case mirrordv1alpha1.SessionReady:
			return queuesReady, nil
		case mirrordv1alpha1.SessionDegraded:
			return Usable(s) && queuesReady, nil
		case mirrordv1alpha1.SessionFailed:
			msg := string(s.Status.Phase)
			if c := meta.FindStatusCondition(s.Status.Conditions, mirrordv1alpha1.ConditionReady); c != nil {
				msg = c.Message
			}
			return false, fmt.Errorf("%w: %s", ErrFailed, msg)
		}
		return false, nil
	})
	if err != nil && ctx.Err() != nil {
		// UntilWithSync's own timeout error says nothing; the caller knows what ran out.
		return last, ctx.Err()
	}
	return last, err
}

// Usable is whether a Degraded session serves already: no cluster is still starting, the
// Default cluster's part (env, files, DNS, outgoing) is ready, and so is at least one
// cluster. What is missing is a member that is unreachable or failed, which Missing names.
func Usable(s *mirrordv1alpha1.MirrordSession) bool {
	ready := 0
	for _, c := range s.Status.Clusters {
		switch c.Phase {
		case mirrordv1alpha1.SessionReady:
			ready++
		case "", mirrordv1alpha1.SessionPending:
			return false
		default:
			if slices.Contains(c.Roles, mirrordv1alpha1.ClusterRoleDefault) {
				return false
			}
		}
	}
	return ready > 0
}

// Missing describes the clusters of s that are not ready ("c3: why; ...").
func Missing(s *mirrordv1alpha1.MirrordSession) string {
	var parts []string
	for _, c := range s.Status.Clusters {
		if c.Phase != mirrordv1alpha1.SessionReady {
			parts = append(parts, fmt.Sprintf("%s (%s)", c.Name, c.Error))
		}
	}
	return strings.Join(parts, "; ")
}

// End deletes the session; the Primary removes everything it made in every cluster.
func End(ctx context.Context, c versioned.Interface, namespace, name string) error {
	err := c.MirrordV1alpha1().MirrordSessions(namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// OneObject is a ListWatch of the one object named name, from a typed client's List and
// Watch: what the CLI waits on (a session, a branch, a query) with toolswatch.UntilWithSync.
func OneObject[L runtime.Object](name string, list func(context.Context, metav1.ListOptions) (L, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)) *cache.ListWatch {
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return list(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return watchFn(ctx, o)
		},
	}
}
