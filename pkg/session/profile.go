package session

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/generated/clientset/versioned"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/profile"
)

// ApplyProfile is f with the profile it names applied (as mirrord applies a profile over the
// config file and the flags), read from the Primary; f itself when it names none. A
// MirrordProfile must be in the session's namespace.
func ApplyProfile(ctx context.Context, mirrord versioned.Interface, namespace string, f mirrordv1alpha1.Features) (mirrordv1alpha1.Features, error) {
	if f.Profile == "" {
		return f, nil
	}
	ref, err := profile.ParseRef(f.Profile)
	if err != nil {
		return f, err
	}
	if ref.Namespace != "" && ref.Namespace != namespace {
		return f, fmt.Errorf("profile %s: a MirrordProfile must be in the session's namespace (%s): run in -n %s, or name a MirrordClusterProfile", ref, namespace, ref.Namespace)
	}
	var adjs []mirrordv1alpha1.FeatureAdjustment
	if ref.Namespace == "" {
		p, gerr := mirrord.MirrordV1alpha1().MirrordClusterProfiles().Get(ctx, ref.Name, metav1.GetOptions{})
		if err = gerr; err == nil {
			adjs = p.Spec.FeatureAdjustments
		}
	} else {
		p, gerr := mirrord.MirrordV1alpha1().MirrordProfiles(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err = gerr; err == nil {
			adjs = p.Spec.FeatureAdjustments
		}
	}
	switch {
	case apierrors.IsNotFound(err):
		return f, fmt.Errorf("profile %s: no %s of that name on the Primary (kubectl get %ss%s): check its spelling, or remove profile from the config file", ref, ref.Kind(), strings.ToLower(ref.Kind()), nsFlag(ref))
	case apierrors.IsForbidden(err):
		return f, fmt.Errorf("profile %s: you may not read it: an admin grants get on %ss (mirrord-user has it for the namespace's profiles)", ref, strings.ToLower(ref.Kind()))
	case err != nil:
		return f, fmt.Errorf("profile %s: %w", ref, err)
	}
	return profile.Apply(adjs, f), nil
}

func nsFlag(r profile.Ref) string {
	if r.Namespace == "" {
		return ""
	}
	return " -n " + r.Namespace
}
