// Package target parses and prints session targets the way both mirrord users
// (pod/NAME/container/C, deployment/NAME) and kubectl users (deploy/NAME, -c C) write them.
package target

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// ErrNoTarget is returned for an empty target.
var ErrNoTarget = errors.New("no target given: use deploy/NAME, pod/NAME, sts/NAME, rs/NAME, ds/NAME, job/NAME, cronjob/NAME, svc/NAME, rollout/NAME, labels/KEY=VALUE[,...] or targetless")

// Targetless is how mirrord users write a session without a target.
const Targetless = "targetless"

// kinds maps every accepted spelling of a resource to its kind.
var kinds = map[string]mirrordv1alpha1.TargetKind{}

func init() {
	for kind, names := range map[mirrordv1alpha1.TargetKind][]string{
		mirrordv1alpha1.TargetKindPod:         {"pod", "pods", "po"},
		mirrordv1alpha1.TargetKindDeployment:  {"deployment", "deployments", "deploy", "deployment.apps", "deployments.apps"},
		mirrordv1alpha1.TargetKindStatefulSet: {"statefulset", "statefulsets", "sts", "statefulset.apps", "statefulsets.apps"},
		mirrordv1alpha1.TargetKindReplicaSet:  {"replicaset", "replicasets", "rs", "replicaset.apps", "replicasets.apps"},
		mirrordv1alpha1.TargetKindDaemonSet:   {"daemonset", "daemonsets", "ds", "daemonset.apps", "daemonsets.apps"},
		mirrordv1alpha1.TargetKindJob:         {"job", "jobs", "job.batch", "jobs.batch"},
		mirrordv1alpha1.TargetKindCronJob:     {"cronjob", "cronjobs", "cj", "cronjob.batch", "cronjobs.batch"},
		mirrordv1alpha1.TargetKindService:     {"service", "services", "svc"},
		mirrordv1alpha1.TargetKindRollout:     {"rollout", "rollouts", "ro", "rollout.argoproj.io", "rollouts.argoproj.io"},
		mirrordv1alpha1.TargetKindLabels:      {"labels"},
	} {
		for _, n := range names {
			kinds[n] = kind
		}
	}
}

// meshSidecars are never a pod's default container, and `kubectl mirrord ls` leaves them out:
// a user means their app, not the proxy (mirrord skips the same).
var meshSidecars = map[string]bool{"istio-proxy": true, "linkerd-proxy": true, "kuma-sidecar": true}

// IsMeshSidecar says whether a container of this name is a service mesh's proxy.
func IsMeshSidecar(container string) bool { return meshSidecars[container] }

// Kind is the kind a spelling names (deploy, deployments.apps, sts, po, ...).
func Kind(spelling string) (mirrordv1alpha1.TargetKind, bool) {
	k, ok := kinds[strings.ToLower(spelling)]
	return k, ok
}

// Parse reads KIND/NAME, KIND/NAME/container/CONTAINER or targetless. container (from -c)
// wins over a container in the path only if they agree; namespace is the session's namespace.
func Parse(s, container, namespace string) (mirrordv1alpha1.Target, error) {
	var t mirrordv1alpha1.Target
	if s == "" {
		return t, ErrNoTarget
	}
	if strings.EqualFold(s, Targetless) {
		if container != "" {
			return t, fmt.Errorf("a targetless session has no container: drop -c %s, or name a target", container)
		}
		return mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindTargetless, Namespace: namespace}, nil
	}
	parts := strings.Split(s, "/")
	if k, rest, ok := strings.Cut(s, "/"); ok && kinds[strings.ToLower(k)] == mirrordv1alpha1.TargetKindLabels {
		// Label keys hold slashes (app.kubernetes.io/name); values cannot: only a last
		// /container/NAME is not the selector's.
		parts = []string{k, rest}
		if i := strings.LastIndex(rest, "/container/"); i >= 0 {
			parts = []string{k, rest[:i], "container", rest[i+len("/container/"):]}
		}
	}
	if len(parts) != 2 && len(parts) != 4 {
		return t, fmt.Errorf("target %q: write it as KIND/NAME or KIND/NAME/container/CONTAINER, e.g. deploy/api or pod/api-0/container/main", s)
	}
	kind, ok := kinds[strings.ToLower(parts[0])]
	if !ok {
		return t, fmt.Errorf("target %q: unknown kind %q; use pod, deployment (deploy), statefulset (sts), replicaset (rs), daemonset (ds), job, cronjob (cj), service (svc), rollout or labels", s, parts[0])
	}
	t.Kind, t.Namespace = kind, namespace
	if kind == mirrordv1alpha1.TargetKindLabels {
		sel, err := labels.ConvertSelectorToLabelsMap(parts[1])
		if err != nil || len(sel) == 0 {
			return t, fmt.Errorf("target %q: write the labels as labels/KEY=VALUE[,KEY=VALUE...]: %v", s, err)
		}
		t.Labels = sel
	} else {
		t.Name = parts[1]
		if errs := validation.IsDNS1123Subdomain(t.Name); len(errs) > 0 {
			return t, fmt.Errorf("target %q: %q is not a valid name: %s", s, t.Name, strings.Join(errs, "; "))
		}
	}
	if len(parts) == 4 {
		if parts[2] != "container" {
			return t, fmt.Errorf("target %q: expected .../container/CONTAINER after the name, got %q", s, parts[2])
		}
		t.Container = parts[3]
	}
	if container != "" {
		if t.Container != "" && t.Container != container {
			return t, fmt.Errorf("target %q names container %q but -c says %q: give it once", s, t.Container, container)
		}
		t.Container = container
	}
	if t.Container != "" {
		if errs := validation.IsDNS1123Label(t.Container); len(errs) > 0 {
			return t, fmt.Errorf("container %q is not a valid container name: %s", t.Container, strings.Join(errs, "; "))
		}
	}
	return t, nil
}

// String prints a target the way kubectl users read it: deployment/api[/container/c], or
// targetless.
func String(t mirrordv1alpha1.Target) string {
	if t.IsTargetless() {
		return Targetless
	}
	name := t.Name
	if t.Kind == mirrordv1alpha1.TargetKindLabels {
		name = labels.Set(t.Labels).String() // sorted by key
	}
	s := strings.ToLower(string(t.Kind)) + "/" + name
	if t.Container != "" {
		s += "/container/" + t.Container
	}
	return s
}
