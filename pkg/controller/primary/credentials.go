package primary

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/credentials"
)

// bearer sets a member's current token on each request: a renewed token is used at once,
// without rebuilding the member's clients and informers.
type bearer struct {
	token *atomic.Pointer[string]
	rt    http.RoundTripper
}

func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(*b.token.Load()))
	return b.rt.RoundTrip(req)
}

// renewToken renews m's token when due (credentials.RenewDue): a new one from the member, asked with
// the current one, written to the credentials Secret and used at once.
func (c *Controller) renewToken(ctx context.Context, m *member) {
	secret, err := c.secrets.Secrets(c.opts.Namespace).Get(m.secretName)
	if err != nil || !credentials.RenewDue(c.clock.Now(), secret.Data) {
		return
	}
	logger := klog.FromContext(ctx).WithValues("cluster", m.name)
	token, issued, expiry, err := credentials.RequestToken(ctx, m.kube, m.namespace, credentials.MemberTokenLifetime)
	if err != nil {
		logger.Error(err, "Renewing the member token (the current one serves until it expires)")
		return
	}
	updated := secret.DeepCopy()
	updated.Data = credentials.Data(token, secret.Data[credentials.SecretKeyCA], issued, expiry)
	if _, err := c.kube.CoreV1().Secrets(c.opts.Namespace).Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
		logger.Error(err, "Storing the renewed member token")
		return
	}
	m.token.Store(&token)
	logger.Info("Renewed the member token", "expires", expiry.UTC().Format(time.RFC3339))
}
