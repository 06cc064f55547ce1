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

package primary

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// TestLiveness runs a session's heartbeats through the controller's decisions: a client
// clock an hour behind or ahead keeps the session exactly as long as its heartbeats arrive.
func TestLiveness(t *testing.T) {
	start := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for name, skew := range map[string]time.Duration{"client clock right": 0, "an hour behind": -time.Hour, "an hour ahead": time.Hour} {
		t.Run(name, func(t *testing.T) {
			s := &mirrordv1alpha1.MirrordSession{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.Time{Time: start}}, Spec: mirrordv1alpha1.MirrordSessionSpec{TTLSeconds: 30}}
			beat := func(at time.Time) {
				s.Annotations = map[string]string{mirrordv1alpha1.AnnotationHeartbeat: at.Add(skew).Format(time.RFC3339Nano)}
			}
			var hb heartbeat
			known := false
			at := func(now time.Time) (bool, time.Duration) {
				hb, known = observeHeartbeat(hb, known, s, now), true
				return expiry(hb.seen, s.Spec.TTLSeconds, now)
			}
			// Created with a heartbeat, then one every 10 s for two minutes: alive throughout.
			now := start
			beat(now)
			for ; now.Before(start.Add(2 * time.Minute)); now = now.Add(10 * time.Second) {
				beat(now)
				if gone, left := at(now); gone || left != 30*time.Second {
					t.Fatalf("at %s after a heartbeat: expired %v, %s left; want 30s left", now.Sub(start), gone, left)
				}
				if gone, _ := at(now.Add(9 * time.Second)); gone {
					t.Fatalf("expired 9s after a heartbeat")
				}
			}
			// Then silence: alive for the TTL after the last one seen, gone just after.
			last := now.Add(-10 * time.Second)
			if gone, _ := at(last.Add(30 * time.Second)); gone {
				t.Fatal("expired at the TTL's end")
			}
			if gone, _ := at(last.Add(30*time.Second + time.Millisecond)); !gone {
				t.Fatal("alive after the TTL without heartbeats")
			}
		})
	}
}

func TestObserveHeartbeat(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	with := func(v string) *mirrordv1alpha1.MirrordSession {
		return &mirrordv1alpha1.MirrordSession{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{mirrordv1alpha1.AnnotationHeartbeat: v}}}
	}
	for name, tc := range map[string]struct {
		prev    heartbeat
		known   bool
		session *mirrordv1alpha1.MirrordSession
		want    heartbeat
	}{
		"first sight (a restart, a new leader): one TTL from now": {session: with("x"), want: heartbeat{"x", now}},
		"unchanged: the time it was first seen":                   {prev: heartbeat{"x", now.Add(-20 * time.Second)}, known: true, session: with("x"), want: heartbeat{"x", now.Add(-20 * time.Second)}},
		"changed, whatever time it claims: now":                   {prev: heartbeat{"x", now.Add(-20 * time.Second)}, known: true, session: with("1999-01-01T00:00:00Z"), want: heartbeat{"1999-01-01T00:00:00Z", now}},
		"a far-future claim buys nothing":                         {prev: heartbeat{"2099-01-01T00:00:00Z", now.Add(-29 * time.Second)}, known: true, session: with("2099-01-01T00:00:00Z"), want: heartbeat{"2099-01-01T00:00:00Z", now.Add(-29 * time.Second)}},
	} {
		t.Run(name, func(t *testing.T) {
			if got := observeHeartbeat(tc.prev, tc.known, tc.session, now); got != tc.want {
				t.Errorf("observeHeartbeat = %+v, want %+v", got, tc.want)
			}
		})
	}
}
