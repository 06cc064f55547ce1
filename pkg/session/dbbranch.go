package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	toolswatch "k8s.io/client-go/tools/watch"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/dbbranch"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
)

// BranchName is the MirrordDBBranch of id: readable where the id is a short DNS label, a hash
// of it otherwise. One id is one branch in a namespace, shared by every session naming it.
func BranchName(id string) string {
	if len(id) <= 40 && len(validation.IsDNS1123Label(id)) == 0 {
		return "branch-" + id
	}
	return "branch-" + shortHash(id)
}

// sameBranch says whether an existing branch is what spec asks for (its owner aside: a
// teammate's branch of the same id is shared).
func sameBranch(have, want mirrordv1alpha1.MirrordDBBranchSpec) bool {
	have.Owner, have.OwnerGroups, want.Owner, want.OwnerGroups = "", nil, "", nil
	have.TTLSeconds, want.TTLSeconds = 0, 0
	have.CreationTimeoutSeconds, want.CreationTimeoutSeconds = 0, 0
	return reflect.DeepEqual(have, want)
}

// EnsureBranches creates (or reuses, by id) each branch a session's command uses, in
// namespace, as owner, copying target's database, and waits until each is Ready, telling
// progress. A branch it created that fails is deleted: nothing is left behind.
func EnsureBranches(ctx context.Context, c versioned.Interface, namespace string, owner Owner, target mirrordv1alpha1.Target,
	specs []mirrordv1alpha1.MirrordDBBranchSpec, logf func(string, ...any)) ([]dbbranch.Ready, error) {
	var out []dbbranch.Ready
	for _, spec := range specs {
		spec.Owner, spec.OwnerGroups, spec.Target = owner.Name, owner.Groups, target
		if spec.ID == "" {
			spec.ID = "s-" + utilrand.String(8) // this session's own
		}
		r, err := ensureBranch(ctx, c, namespace, spec, logf)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func ensureBranch(ctx context.Context, c versioned.Interface, namespace string, spec mirrordv1alpha1.MirrordDBBranchSpec, logf func(string, ...any)) (dbbranch.Ready, error) {
	branches := c.MirrordV1alpha1().MirrordDBBranches(namespace)
	name := BranchName(spec.ID)
	created := false
	b, err := branches.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		b, err = branches.Create(ctx, &mirrordv1alpha1.MirrordDBBranch{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Spec: spec}, metav1.CreateOptions{})
		if err == nil {
			created = true
			logf("database branch %s (%s, copy %s) created for id %s", name, spec.Engine, strings.ToLower(string(spec.Copy.Mode)), spec.ID)
		} else if apierrors.IsAlreadyExists(err) {
			b, err = branches.Get(ctx, name, metav1.GetOptions{})
		}
	}
	if err != nil {
		if reason := admissionDenial(err); reason != "" {
			return dbbranch.Ready{}, fmt.Errorf("the Primary refused database branch %s: %s", spec.ID, reason)
		}
		return dbbranch.Ready{}, fmt.Errorf("database branch %s: %w", spec.ID, err)
	}
	if !created {
		if b.Spec.ID != spec.ID || !sameBranch(b.Spec, spec) {
			return dbbranch.Ready{}, fmt.Errorf("database branch id %q is already %s, made with another configuration (engine, target, connection or copy): give this one another id, or end that one with `kubectl mirrord db-branches destroy %s`", spec.ID, name, name)
		}
		logf("database branch %s reused for id %s (%s)", name, spec.ID, orPending(b.Status.Phase))
	}
	timeout := time.Duration(spec.CreationTimeoutSeconds)*time.Second + 30*time.Second
	ready, err := waitBranch(ctx, c, namespace, name, timeout, logf)
	if err != nil {
		if created {
			// A branch this run made and that cannot work goes at once, not after its TTL.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			_ = branches.Delete(dctx, name, metav1.DeleteOptions{})
			cancel()
		}
		return dbbranch.Ready{}, fmt.Errorf("database branch %s: %w", spec.ID, err)
	}
	return dbbranch.Ready{Name: name, Spec: ready.Spec, Endpoint: *ready.Status.Endpoint}, nil
}

func orPending(p mirrordv1alpha1.DBBranchPhase) mirrordv1alpha1.DBBranchPhase {
	if p == "" {
		return mirrordv1alpha1.DBBranchPending
	}
	return p
}

// waitBranch watches branch name until it is Ready (returned) or Failed (its message).
func waitBranch(ctx context.Context, c versioned.Interface, namespace, name string, timeout time.Duration, logf func(string, ...any)) (*mirrordv1alpha1.MirrordDBBranch, error) {
	branches := c.MirrordV1alpha1().MirrordDBBranches(namespace)
	lw := OneObject(name, branches.List, branches.Watch)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last *mirrordv1alpha1.MirrordDBBranch
	said := ""
	_, err := toolswatch.UntilWithSync(wctx, lw, &mirrordv1alpha1.MirrordDBBranch{}, nil, func(e watch.Event) (bool, error) {
		if e.Type == watch.Deleted {
			return false, errors.New("it was deleted while starting")
		}
		b, ok := e.Object.(*mirrordv1alpha1.MirrordDBBranch)
		if !ok {
			return false, nil
		}
		last = b
		if msg := fmt.Sprintf("%s: %s", orPending(b.Status.Phase), b.Status.Message); msg != said && b.Status.Message != "" {
			said = msg
			logf("database branch %s: %s", name, msg)
		}
		switch b.Status.Phase {
		case mirrordv1alpha1.DBBranchReady:
			return b.Status.Endpoint != nil, nil
		case mirrordv1alpha1.DBBranchFailed:
			return false, fmt.Errorf("%s: %s", b.Status.Reason, b.Status.Message)
		}
		return false, nil
	})
	if err != nil && wctx.Err() != nil && ctx.Err() == nil {
		msg := "no controller made it: is the Primary's Default cluster running kubectl-mirrord? (kubectl mirrord status)"
		if last != nil && last.Status.Message != "" {
			msg = last.Status.Message
		}
		return nil, fmt.Errorf("not Ready within %s: %s", timeout, msg)
	}
	return last, err
}

// shortHash is 12 hex characters of id's SHA-256.
func shortHash(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:6])
}

// StartBranches makes the database branches a session's command uses before the session:
// each Ready, its name in spec's features (so it lives while the session does). The Default
// cluster makes them (the Primary copies them there when it is another cluster).
func StartBranches(ctx context.Context, c versioned.Interface, owner Owner, spec *mirrordv1alpha1.MirrordSessionSpec,
	specs []mirrordv1alpha1.MirrordDBBranchSpec, logf func(string, ...any)) ([]dbbranch.Ready, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	if spec.Target.IsTargetless() {
		return nil, errors.New("feature.db_branches: a branch copies the database its target reaches: name a target (--target)")
	}
	ready, err := EnsureBranches(ctx, c, spec.Target.Namespace, owner, spec.Target, specs, logf)
	if err != nil {
		return nil, err
	}
	for _, r := range ready {
		spec.Features.DBBranches = append(spec.Features.DBBranches, r.Name)
	}
	return ready, nil
}
