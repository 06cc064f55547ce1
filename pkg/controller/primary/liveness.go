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
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// lastHeartbeat is when session s last proved it is alive, by servers' clocks only: its
// creation (the API server's), the last renewal of its Lease (nil if none yet; a relay renews
// it, with its own clock, for each heartbeat whose key proof it checked), or this
// controller's start (a controller that was away gives every session one TTL from its
// return, as the clients could not reach it either). No time a client writes is read: a
// laptop an hour behind or ahead keeps its session exactly as long as its heartbeats arrive.
func lastHeartbeat(s *mirrordv1alpha1.MirrordSession, lease *coordinationv1.Lease, started time.Time) time.Time {
	last := s.CreationTimestamp.Time
	if lease != nil && lease.Spec.RenewTime != nil && lease.Spec.RenewTime.After(last) {
		last = lease.Spec.RenewTime.Time
	}
	if started.After(last) {
		last = started
	}
	return last
}

// expiry says whether a session whose last heartbeat was at last has outlived its TTL at
// now, and if not, how long it has left.
func expiry(last time.Time, ttlSeconds int32, now time.Time) (expired bool, left time.Duration) {
	ttl := time.Duration(ttlSeconds) * time.Second
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	left = last.Add(ttl).Sub(now)
	return left < 0, left
}
