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

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestLastHeartbeat(t *testing.T) {
	created := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	s := &mirrordv1alpha1.MirrordSession{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.Time{Time: created}}, Spec: mirrordv1alpha1.MirrordSessionSpec{TTLSeconds: 30}}
	renewed := func(at time.Time) *coordinationv1.Lease {
		return &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: at}}}
	}
	for name, tc := range map[string]struct {
		lease   *coordinationv1.Lease
		started time.Time
		want    time.Time
	}{
		"no heartbeat yet: its creation":                     {want: created},
		"a renewed Lease":                                    {lease: renewed(created.Add(50 * time.Second)), want: created.Add(50 * time.Second)},
		"a Lease without a renewal":                          {lease: &coordinationv1.Lease{}, want: created},
		"a controller started since: one TTL from its start": {lease: renewed(created.Add(10 * time.Second)), started: created.Add(time.Hour), want: created.Add(time.Hour)},
		"a controller started before":                        {lease: renewed(created.Add(10 * time.Second)), started: created.Add(-time.Hour), want: created.Add(10 * time.Second)},
	} {
		t.Run(name, func(t *testing.T) {
			if got := lastHeartbeat(s, tc.lease, tc.started); !got.Equal(tc.want) {
				t.Errorf("lastHeartbeat = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	last := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct {
		ttl      int32
		now      time.Time
		wantGone bool
		wantLeft time.Duration
	}{
		"just after a heartbeat":       {ttl: 30, now: last, wantLeft: 30 * time.Second},
		"at the TTL's end":             {ttl: 30, now: last.Add(30 * time.Second), wantLeft: 0},
		"just past it":                 {ttl: 30, now: last.Add(30*time.Second + time.Millisecond), wantGone: true, wantLeft: -time.Millisecond},
		"no TTL set: the default, 30s": {ttl: 0, now: last.Add(29 * time.Second), wantLeft: time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			gone, left := expiry(last, tc.ttl, tc.now)
			if gone != tc.wantGone || left != tc.wantLeft {
				t.Errorf("expiry = %v, %s; want %v, %s", gone, left, tc.wantGone, tc.wantLeft)
			}
		})
	}
}
