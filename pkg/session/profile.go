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
	ref, adjs, err := profile.Resolve(f.Profile, namespace, func(ref profile.Ref) ([]mirrordv1alpha1.FeatureAdjustment, error) {
		if ref.Namespace == "" {
			p, err := mirrord.MirrordV1alpha1().MirrordClusterProfiles().Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return p.Spec.FeatureAdjustments, nil
		}
		p, err := mirrord.MirrordV1alpha1().MirrordProfiles(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return p.Spec.FeatureAdjustments, nil
	})
	if apierrors.IsForbidden(err) {
		return f, fmt.Errorf("profile %s: you may not read it: an admin grants get on %ss (mirrord-user has it for the namespace's profiles)", ref, strings.ToLower(ref.Kind()))
	}
	if err != nil {
		return f, err
	}
	return profile.Apply(adjs, f), nil
}
