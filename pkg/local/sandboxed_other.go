//go:build !linux

package local

import (
	"context"
	"errors"
	"time"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

// runSandboxed is never reached off Linux: Run picks proxy mode there.
func (o *Options) runSandboxed(ctx context.Context, client *protocol.Client, spec *mirrordv1alpha1.MirrordSessionSpec, env []string, hostname string, start time.Time, _ <-chan struct{}) (int, error) {
	return -1, errors.New("the command's own namespaces need Linux: use --proxy-mode")
}
