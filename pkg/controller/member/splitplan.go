package member

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/queuesplit"
)

// The decisions of queue splitting (queuesplit.go does the I/O): which registry a cluster
// honours, what its consumer's queue variables held before the split, how the consumer is
// patched and restored, and what each session is told.

// AnnotationQueueSplit, on a consumer Deployment while its queues are split, records what
// the split changed (splitRecord), so that a restarted controller restores it.
const AnnotationQueueSplit = mirrordv1alpha1.GroupName + "/queue-split"

// splitRecord is what a split changed on its consumer.
type splitRecord struct {
	// Registry is the registry's key in this cluster (namespace/name).
	Registry string `json:"registry"`
	// Container is the consumer's container whose variables changed.
	Container string `json:"container"`
	// Vars are the variables' values before the split, by name.
	Vars map[string]originalVar `json:"vars"`
	// Restored: the variables hold their old values again; the split's queues are still to
	// be drained into the originals (the record goes after).
	Restored bool `json:"restored,omitempty"`
}

// originalVar is a consumer variable before the split: its value, or absent.
type originalVar struct {
	Value   string `json:"value,omitempty"`
	Present bool   `json:"present"`
}

// parseSplitRecord reads AnnotationQueueSplit.
func parseSplitRecord(raw string) (splitRecord, error) {
	var rec splitRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return rec, fmt.Errorf("annotation %s: %w", AnnotationQueueSplit, err)
	}
	if rec.Vars == nil {
		rec.Vars = map[string]originalVar{}
	}
	return rec, nil
}

// registryConsumerNamespace is the namespace of registry r's consumer as this cluster
// honours it, or "" if it honours none: a copy the Primary made in the controller's
// namespace names its consumer's namespace in a label; a registry elsewhere is honoured
// only in the Primary's own cluster, where admins write them.
func registryConsumerNamespace(r *mirrordv1alpha1.MirrordWorkloadQueueRegistry, controllerNS string, primary bool) string {
	if r.Namespace == controllerNS {
		if _, copied := r.Labels[mirrordv1alpha1.LabelPrimary]; copied {
			return r.Labels[mirrordv1alpha1.LabelParentNamespace]
		}
	}
	if primary && r.Namespace != controllerNS {
		return r.Namespace
	}
	return ""
}

// consumerContainer is the consumer's container the registry means: the named one, or the
// first.
func consumerContainer(d *appsv1.Deployment, name string) (*corev1.Container, error) {
	cs := d.Spec.Template.Spec.Containers
	if name == "" && len(cs) > 0 {
		return &cs[0], nil
	}
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i], nil
		}
	}
	return nil, fmt.Errorf("deployment %s/%s has no container %q", d.Namespace, d.Name, name)
}

// consumerOriginals are the consumer's queue variables before any split: from the split's
// record when the consumer is split already, else from its container as it is.
func consumerOriginals(d *appsv1.Deployment, registryKey string, c *corev1.Container, vars []string) (map[string]originalVar, error) {
	if raw, ok := d.Annotations[AnnotationQueueSplit]; ok {
		rec, err := parseSplitRecord(raw)
		if err != nil {
			return nil, fmt.Errorf("deployment %s/%s: %w", d.Namespace, d.Name, err)
		}
		if rec.Registry != registryKey {
			return nil, fmt.Errorf("deployment %s/%s is split by queue registry %s already", d.Namespace, d.Name, rec.Registry)
		}
		return rec.Vars, nil
	}
	out := map[string]originalVar{}
	for _, name := range vars {
		out[name] = originalVar{}
		for _, e := range c.Env {
			if e.Name != name {
				continue
			}
			if e.ValueFrom != nil {
				return nil, fmt.Errorf("container %s of deployment %s/%s takes %s from a reference (valueFrom): only a literal value can be split; put the queue's name in the variable", c.Name, d.Namespace, d.Name, name)
			}
			out[name] = originalVar{Value: e.Value, Present: true}
		}
	}
	return out, nil
}

// originalQueue is the queue a consumer variable names before the split: its value, else
// the registry's fallback name.
func originalQueue(v originalVar, q mirrordv1alpha1.SplitQueue) (string, error) {
	if v.Present && v.Value != "" {
		return v.Value, nil
	}
	if q.FallbackName != "" {
		return q.FallbackName, nil
	}
	return "", fmt.Errorf("the consumer has no %s and the registry gives no fallbackName", q.NameSource.EnvVar)
}

// queueValue is how a variable that held original names the queue name at url: a URL for a
// URL, a name for a name.
func queueValue(original, name, url string) string {
	if queuesplit.IsURL(original) {
		return url
	}
	return name
}

// splitPatch is the strategic merge patch that points container's variables at want (name to
// value) and records rec; restorePatch undoes it.
func splitPatch(rec splitRecord, want map[string]string) ([]byte, error) {
	raw, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	var env []map[string]any
	for _, name := range sortedNames(want) {
		env = append(env, map[string]any{"name": name, "value": want[name]})
	}
	return json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{AnnotationQueueSplit: string(raw)}},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": rec.Container, "env": env}}}}},
	})
}

// restorePatch puts the consumer's variables back and marks the record restored;
// forgetPatch then removes the record.
func restorePatch(rec splitRecord) ([]byte, error) {
	rec.Restored = true
	raw, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	var env []map[string]any
	for _, name := range sortedNames(rec.Vars) {
		if v := rec.Vars[name]; v.Present {
			env = append(env, map[string]any{"name": name, "value": v.Value})
		} else {
			env = append(env, map[string]any{"name": name, "$patch": "delete"})
		}
	}
	return json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{AnnotationQueueSplit: string(raw)}},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": rec.Container, "env": env}}}}},
	})
}

func forgetPatch(splitRecord) ([]byte, error) {
	return json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{AnnotationQueueSplit: nil}}})
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// consumerHolds says whether container's variables hold want already.
func consumerHolds(c *corev1.Container, want map[string]string) bool {
	for name, v := range want {
		if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name && e.ValueFrom == nil && e.Value == v }) {
			return false
		}
	}
	return true
}

// rolledOut says whether every pod of d runs its current template, and why not.
func rolledOut(d *appsv1.Deployment) (bool, string) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	switch {
	case st.ObservedGeneration < d.Generation:
		return false, "its controller has not seen the change yet"
	case st.UpdatedReplicas < want:
		return false, fmt.Sprintf("%d of %d pods run the new template", st.UpdatedReplicas, want)
	case st.Replicas > st.UpdatedReplicas:
		return false, fmt.Sprintf("%d old pods still run", st.Replicas-st.UpdatedReplicas)
	case st.AvailableReplicas < st.UpdatedReplicas:
		return false, fmt.Sprintf("%d of %d new pods are available", st.AvailableReplicas, st.UpdatedReplicas)
	}
	return true, ""
}

// splitSession is one session on a split consumer, in this cluster.
type splitSession struct {
	child     string // the child session's key here
	parent    string // the session's namespace/name on the Primary
	parentUID string
	created   int64 // the child's creation, unix nanoseconds: older sessions' filters go first
	filters   map[string]map[string]string
}

// splitSessionsOf are the sessions of children that split queues of a consumer: live ones
// whose target is deployment consumer in namespace ns and that ask for a queue.
func splitSessionsOf(children []*mirrordv1alpha1.MirrordClusterSession, ns, consumer string) []splitSession {
	var out []splitSession
	for _, ch := range children {
		t := ch.Spec.Target
		if ch.DeletionTimestamp != nil || len(ch.Spec.Features.SplitQueues) == 0 || t.Namespace != ns ||
			!targetIsDeployment(t, consumer) {
			continue
		}
		s := splitSession{child: ch.Namespace + "/" + ch.Name, parent: ch.Spec.Parent.Namespace + "/" + ch.Spec.Parent.Name,
			parentUID: ch.Spec.Parent.UID, created: ch.CreationTimestamp.UnixNano(), filters: map[string]map[string]string{}}
		for _, q := range ch.Spec.Features.SplitQueues {
			s.filters[q.QueueID] = q.MessageFilter
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].created != out[j].created {
			return out[i].created < out[j].created
		}
		return out[i].child < out[j].child
	})
	return out
}

// targetIsDeployment says whether t is deployment name (a container of it included).
func targetIsDeployment(t mirrordv1alpha1.Target, name string) bool {
	return t.Kind == mirrordv1alpha1.TargetKindDeployment && t.Name == name
}
