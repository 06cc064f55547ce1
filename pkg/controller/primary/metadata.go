package primary

import (
	"maps"
	"slices"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// withMetadata is s as the Primary keeps it: with the finalizer that holds it until its
// children are gone, and labels that say its owner and target as the spec does (whatever its
// creator wrote in them). ok is false when s is so already.
func withMetadata(s *mirrordv1alpha1.MirrordSession) (updated *mirrordv1alpha1.MirrordSession, ok bool) {
	want := mirrordv1alpha1.SessionLabels(&s.Spec)
	hasLabels := true
	for k, v := range want {
		if s.Labels[k] != v {
			hasLabels = false
		}
	}
	if hasLabels && slices.Contains(s.Finalizers, mirrordv1alpha1.FinalizerChildren) {
		return nil, false
	}
	updated = s.DeepCopy()
	if !slices.Contains(updated.Finalizers, mirrordv1alpha1.FinalizerChildren) {
		updated.Finalizers = append(updated.Finalizers, mirrordv1alpha1.FinalizerChildren)
	}
	if updated.Labels == nil {
		updated.Labels = map[string]string{}
	}
	maps.Copy(updated.Labels, want)
	return updated, true
}
