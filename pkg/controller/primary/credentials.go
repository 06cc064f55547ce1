package primary

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// A member's credentials for its Primary are short-lived tokens of the member's
// MemberServiceAccount (TokenRequest), never a legacy token Secret: `cluster register` asks
// for the first with the admin's credentials, the Primary renews it with its own before a
// third of its life is left, and each connection to the member's relay carries its own
// token, valid for RelayAudience only (useless at the API server) and for minutes.
const (
	// MemberServiceAccount is the Primary's account in a member (the workload component).
	MemberServiceAccount = mirrordv1alpha1.PrimaryServiceAccount
	// MemberTokenLifetime is what a member token is asked for (an API server may give less).
	MemberTokenLifetime = 24 * time.Hour
	// RelayAudience is the audience of the tokens the Primary shows a member's relay.
	RelayAudience = "kubectl-mirrord-relay"
	// RelayTokenLifetime is how long such a token lives (the least TokenRequest allows).
	RelayTokenLifetime = 10 * time.Minute
)

// More keys of a member's credentials Secret: when its token was issued and expires
// (RFC 3339). A Secret without them holds a token of unknown age, renewed at once.
const (
	SecretKeyIssued = "issued"
	SecretKeyExpiry = "expiry"
)

// RequestToken asks a member's API server (kube) for a token of the Primary's account in
// namespace ns, for lifetime, valid for audiences (none: the API server's own).
func RequestToken(ctx context.Context, kube kubernetes.Interface, ns string, lifetime time.Duration, audiences ...string) (token string, issued, expiry time.Time, err error) {
	tr, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, MemberServiceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: ptr.To(int64(lifetime.Seconds()))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", time.Time{}, time.Time{}, fmt.Errorf("requesting a token of %s/%s: %w", ns, MemberServiceAccount, err)
	}
	return tr.Status.Token, time.Now(), tr.Status.ExpirationTimestamp.Time, nil
}

// CredentialsData is the data of a member's credentials Secret.
func CredentialsData(token string, ca []byte, issued, expiry time.Time) map[string][]byte {
	return map[string][]byte{
		SecretKeyToken:  []byte(token),
		SecretKeyCA:     ca,
		SecretKeyIssued: []byte(issued.UTC().Format(time.RFC3339)),
		SecretKeyExpiry: []byte(expiry.UTC().Format(time.RFC3339)),
	}
}

// renewDue says whether the token of a credentials Secret should be renewed at now: when
// two thirds of its life are gone, or its age is unknown.
func renewDue(now time.Time, data map[string][]byte) bool {
	issued, err1 := time.Parse(time.RFC3339, string(data[SecretKeyIssued]))
	expiry, err2 := time.Parse(time.RFC3339, string(data[SecretKeyExpiry]))
	if err1 != nil || err2 != nil || !expiry.After(issued) {
		return true
	}
	return now.After(issued.Add(expiry.Sub(issued) * 2 / 3))
}

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

// renewToken renews m's token when due (renewDue): a new one from the member, asked with
// the current one, written to the credentials Secret and used at once.
func (c *Controller) renewToken(ctx context.Context, m *member) {
	secret, err := c.secrets.Secrets(c.opts.Namespace).Get(m.secretName)
	if err != nil || !renewDue(c.clock.Now(), secret.Data) {
		return
	}
	logger := klog.FromContext(ctx).WithValues("cluster", m.name)
	token, issued, expiry, err := RequestToken(ctx, m.kube, m.namespace, MemberTokenLifetime)
	if err != nil {
		logger.Error(err, "Renewing the member token (the current one serves until it expires)")
		return
	}
	updated := secret.DeepCopy()
	updated.Data = CredentialsData(token, secret.Data[SecretKeyCA], issued, expiry)
	if _, err := c.kube.CoreV1().Secrets(c.opts.Namespace).Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
		logger.Error(err, "Storing the renewed member token")
		return
	}
	m.token.Store(&token)
	logger.Info("Renewed the member token", "expires", expiry.UTC().Format(time.RFC3339))
}
