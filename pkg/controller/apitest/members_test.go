/*
Copyright The kubectl-mirrord Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package apitest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/credentials"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/relay"
)

// TestMemberRelayTokens: a member's relay serves only a token of the Primary's account made
// for the relay's audience; the Primary's API token is refused there, and the relay's token
// is refused by the API server. Tokens come from TokenRequest, as `cluster register` and the
// Primary get them, with the Primary's own RBAC in the member.
func TestMemberRelayTokens(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Install(t, "single-cluster")
	relayAddr := runController(t, s)
	direct := &rest.Config{Host: "https://" + relayAddr, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}

	// The Primary's account asks for its own tokens, as it does to renew them.
	asPrimary, err := kubernetes.NewForConfig(s.Impersonate("system:serviceaccount:mirrord-system:"+mirrordv1alpha1.PrimaryServiceAccount,
		"system:serviceaccounts", "system:serviceaccounts:mirrord-system"))
	if err != nil {
		t.Fatal(err)
	}
	apiToken, issued, expiry, err := credentials.RequestToken(t.Context(), asPrimary, "mirrord-system", credentials.MemberTokenLifetime)
	if err != nil {
		t.Fatal(err)
	}
	if d := expiry.Sub(issued); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("a member token for %v, want %v", d, credentials.MemberTokenLifetime)
	}
	relayToken, _, _, err := credentials.RequestToken(t.Context(), asPrimary, "mirrord-system", credentials.RelayTokenLifetime, credentials.RelayAudience)
	if err != nil {
		t.Fatal(err)
	}
	// Another account's token for the relay's audience.
	if _, err := s.Kube.CoreV1().ServiceAccounts("default").Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "intruder"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	intruder, err := s.Kube.CoreV1().ServiceAccounts("default").CreateToken(t.Context(), "intruder", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{credentials.RelayAudience}, ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	hello := func(token string) error {
		conn, err := relay.Dial(t.Context(), direct, relay.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = protocol.Dial(conn, protocol.Hello{Kind: protocol.HelloClusterSession, Session: "mirrord-system/no-such-child", Token: token}, nil)
		return err
	}
	for name, tc := range map[string]struct{ token, want string }{
		"the Primary's API token":            {apiToken, "not valid for this relay"},
		"another account's relay token":      {intruder.Status.Token, "intruder"},
		"the Primary's relay token":          {relayToken, `no-such-child" not found`}, // past authentication: the child is looked up
		"no token":                           {"", "no token"},
		"a token that is not a token at all": {"garbage", "not valid for this relay"},
	} {
		if err := hello(tc.token); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	// And the relay's token is nothing to the API server.
	cfg := rest.AnonymousClientConfig(s.Config)
	cfg.BearerToken = relayToken
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Namespaces().List(t.Context(), metav1.ListOptions{}); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("the relay's token at the API server: %v, want Unauthorized", err)
	}
}

// TestMemberTokenRenewal: the Primary renews a member's token once two thirds of its life
// are gone, with the token it has, and stores the new one (with the CA); the old one keeps
// working until it expires, so nothing running is cut off. The API server is its own member
// here (a MirrordCluster pointing at it, as the Primary's account; its Lease collides with
// the Primary's own, which is why reachability is not asserted).
func TestMemberTokenRenewal(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Install(t, "single-cluster")
	asPrimary, err := kubernetes.NewForConfig(s.Impersonate("system:serviceaccount:mirrord-system:"+mirrordv1alpha1.PrimaryServiceAccount,
		"system:serviceaccounts", "system:serviceaccounts:mirrord-system"))
	if err != nil {
		t.Fatal(err)
	}
	old, _, _, err := credentials.RequestToken(t.Context(), asPrimary, "mirrord-system", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Issued 50 minutes ago and expiring in 10, as far as the Secret says: due for renewal.
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "mirrord-cluster-self", Namespace: "mirrord-system"},
		Data:       credentials.Data(old, s.CA, time.Now().Add(-50*time.Minute), time.Now().Add(10*time.Minute)),
	}
	if _, err := s.Kube.CoreV1().Secrets("mirrord-system").Create(t.Context(), secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mirrord.MirrordV1alpha1().MirrordClusters().Create(t.Context(), &mirrordv1alpha1.MirrordCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "self"},
		Spec: mirrordv1alpha1.MirrordClusterSpec{Server: s.Config.Host, SecretRef: mirrordv1alpha1.SecretReference{Name: secret.Name},
			Workload: true, Namespace: "mirrord-system"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	runController(t, s)

	var renewed *corev1.Secret
	waitFor(t, "the renewed token", func(ctx context.Context) error {
		got, err := s.Kube.CoreV1().Secrets("mirrord-system").Get(ctx, secret.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if string(got.Data[credentials.SecretKeyToken]) == old {
			mc, _ := s.Mirrord.MirrordV1alpha1().MirrordClusters().Get(ctx, "self", metav1.GetOptions{})
			return fmt.Errorf("still the old token (the cluster: %+v)", mc.Status)
		}
		renewed = got
		return nil
	})
	issued, _ := time.Parse(time.RFC3339, string(renewed.Data[credentials.SecretKeyIssued]))
	newExpiry, _ := time.Parse(time.RFC3339, string(renewed.Data[credentials.SecretKeyExpiry]))
	if d := newExpiry.Sub(issued); d < 23*time.Hour || time.Since(issued) > time.Minute {
		t.Errorf("renewed: issued %v, expires %v", issued, newExpiry)
	}
	if string(renewed.Data[credentials.SecretKeyCA]) != string(s.CA) {
		t.Error("the renewal lost the CA")
	}
	// Both the new token and the old one are the Primary's account.
	for name, tok := range map[string]string{"new": string(renewed.Data[credentials.SecretKeyToken]), "old": old} {
		tr, err := s.Kube.AuthenticationV1().TokenReviews().Create(t.Context(), &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: tok}}, metav1.CreateOptions{})
		if err != nil || !tr.Status.Authenticated || !strings.HasSuffix(tr.Status.User.Username, ":"+mirrordv1alpha1.PrimaryServiceAccount) {
			t.Errorf("the %s token: %+v %v", name, tr.Status, err)
		}
	}
}
