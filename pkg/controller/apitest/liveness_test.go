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
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/naming"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/relay"
)

// TestHeartbeats: a session lives exactly as long as heartbeats proven by its key reach the
// Primary's relay, by the servers' clocks: a heartbeat carries no time at all, so the
// client's clock (an hour behind or ahead) cannot matter; one without the key keeps nothing
// alive; and a heartbeat does not rewrite the session.
func TestHeartbeats(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Install(t, "single-cluster")
	if _, err := s.Kube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hb"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	relayAddr := runController(t, s)
	direct := &rest.Config{Host: "https://" + relayAddr, TLSClientConfig: rest.TLSClientConfig{Insecure: true}} // the relay's certificate is made up

	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, stranger, _ := ed25519.GenerateKey(nil)
	x := session("hb", "Deployment", "api", "hb")
	x.Spec.TTLSeconds = 5
	x.Spec.PublicKey = base64.StdEncoding.EncodeToString(pub)
	created, err := create(t, s, "", x)
	if err != nil {
		t.Fatal(err)
	}
	beat := func(k ed25519.PrivateKey) error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		return relay.Heartbeat(ctx, direct, relay.Path, created, k)
	}
	// Heartbeats every second for three TTLs: alive throughout, and the session object is
	// not rewritten by them.
	if err := beat(key); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	settled := waitSettled(t, s, created.Namespace, created.Name)
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		if err := beat(key); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		got, err := s.Mirrord.MirrordV1alpha1().MirrordSessions("hb").Get(t.Context(), created.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the session ended while heartbeating: %v", err)
		}
		if got.ResourceVersion != settled {
			t.Fatalf("a heartbeat rewrote the session (resourceVersion %s, then %s)", settled, got.ResourceVersion)
		}
	}
	lease, err := s.Kube.CoordinationV1().Leases("mirrord-system").Get(t.Context(), naming.SessionLease(created.UID), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if age := time.Since(lease.Spec.RenewTime.Time); age < 0 || age > 3*time.Second {
		t.Errorf("the Lease was renewed %s ago, want the relay's time of the last heartbeat", age)
	}
	// A heartbeat without the session's key is refused and keeps nothing alive.
	if err := beat(stranger); err == nil {
		t.Fatal("a heartbeat signed by another key was accepted")
	}
	last := time.Now()
	waitFor(t, "the session ended after its TTL without heartbeats", func(ctx context.Context) error {
		_, err := s.Mirrord.MirrordV1alpha1().MirrordSessions("hb").Get(ctx, created.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there %s after the last heartbeat (%v)", time.Since(last).Round(100*time.Millisecond), err)
	})
	if gone := time.Since(last); gone < 4*time.Second || gone > 9*time.Second {
		t.Errorf("ended %s after the last heartbeat, want about its TTL (5s)", gone.Round(100*time.Millisecond))
	}
	waitFor(t, "the heartbeat Lease removed", func(ctx context.Context) error {
		_, err := s.Kube.CoordinationV1().Leases("mirrord-system").Get(ctx, naming.SessionLease(created.UID), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
}

// waitSettled waits until the controller stopped writing the session (its finalizer and
// status are written) and returns its resourceVersion then.
func waitSettled(t *testing.T, s *Server, ns, name string) string {
	t.Helper()
	var rv string
	stable := 0
	waitFor(t, "the session settled", func(ctx context.Context) error {
		got, err := s.Mirrord.MirrordV1alpha1().MirrordSessions(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.ResourceVersion == rv && got.Status.Phase != "" {
			stable++
		} else {
			rv, stable = got.ResourceVersion, 0
		}
		if stable < 10 { // a second without a write
			return fmt.Errorf("resourceVersion %s, phase %q", rv, got.Status.Phase)
		}
		return nil
	})
	return rv
}
