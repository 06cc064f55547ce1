// Package credentials is how a Primary holds and renews its credentials for a member
// cluster: the Secret `kubectl mirrord cluster register` writes and the Primary's controller
// renews, the short-lived tokens it is made of, and the client config built from it.
package credentials

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// Secret keys of a member's credentials.
const (
	SecretKeyToken = "token"
	SecretKeyCA    = "ca.crt"
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

// Data is the data of a member's credentials Secret.
func Data(token string, ca []byte, issued, expiry time.Time) map[string][]byte {
	return map[string][]byte{
		SecretKeyToken:  []byte(token),
		SecretKeyCA:     ca,
		SecretKeyIssued: []byte(issued.UTC().Format(time.RFC3339)),
		SecretKeyExpiry: []byte(expiry.UTC().Format(time.RFC3339)),
	}
}

// RenewDue says whether the token of a credentials Secret should be renewed at now: when
// two thirds of its life are gone, or its age is unknown.
func RenewDue(now time.Time, data map[string][]byte) bool {
	issued, err1 := time.Parse(time.RFC3339, string(data[SecretKeyIssued]))
	expiry, err2 := time.Parse(time.RFC3339, string(data[SecretKeyExpiry]))
	if err1 != nil || err2 != nil || !expiry.After(issued) {
		return true
	}
	return now.After(issued.Add(expiry.Sub(issued) * 2 / 3))
}

// RESTConfig builds a client config from a MirrordCluster and its Secret.
func RESTConfig(mc *mirrordv1alpha1.MirrordCluster, secret *corev1.Secret) (*rest.Config, error) {
	token := secret.Data[SecretKeyToken]
	if len(token) == 0 {
		return nil, fmt.Errorf("Secret %s/%s has no %q key: recreate it with `kubectl mirrord cluster register`", secret.Namespace, secret.Name, SecretKeyToken)
	}
	cfg := &rest.Config{
		Host:        mc.Spec.Server,
		BearerToken: string(token),
		QPS:         50,
		Burst:       100,
		UserAgent:   "kubectl-mirrord-primary",
	}
	if ca := secret.Data[SecretKeyCA]; len(ca) > 0 {
		cfg.TLSClientConfig.CAData = ca
	}
	return cfg, nil
}
