package cmdutil

import (
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// ExplainAPIError turns the API errors users meet into what to do about them. action is what
// was attempted, as RBAC would say it ("list mirrordsessions").
func ExplainAPIError(err error, action string) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err) && isResourceMissing(err):
		return fmt.Errorf("cannot %s: kubectl-mirrord is not installed on this cluster; is the current context the Primary? (an admin installs it with `kubectl mirrord install`): %w", action, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("not allowed to %s: ask an admin to bind the mirrord-user ClusterRole to you (kubectl create rolebinding NAME -n NAMESPACE --clusterrole=mirrord-user --user=YOU): %w", action, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("cannot %s: the API server does not accept your credentials; refresh your kubeconfig: %w", action, err)
	}
	return fmt.Errorf("cannot %s: %w", action, err)
}

// isResourceMissing tells a 404 about the whole resource (CRD not installed) from one about
// a named object.
func isResourceMissing(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	d := status.Status().Details
	return d == nil || d.Name == ""
}
