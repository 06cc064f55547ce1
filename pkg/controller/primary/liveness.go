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

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// heartbeat is the last heartbeat this controller saw of a session, by its own clock: the
// value a client writes is only compared for change, never read as a time, so a laptop an
// hour behind or ahead keeps its session exactly as long as its heartbeats arrive.
type heartbeat struct {
	// value is the session's heartbeat annotation when it last changed.
	value string
	// seen is when this controller saw it change (or first saw the session).
	seen time.Time
}

// observeHeartbeat is what this controller knows of s's heartbeats at now, given what it knew
// (prev; ok false when it never saw s, for example after a restart or a leader change: the
// session then gets one TTL from now, as if it had just heartbeated).
func observeHeartbeat(prev heartbeat, ok bool, s *mirrordv1alpha1.MirrordSession, now time.Time) heartbeat {
	value := s.Annotations[mirrordv1alpha1.AnnotationHeartbeat]
	if ok && prev.value == value {
		return prev
	}
	return heartbeat{value: value, seen: now}
}

// expiry says whether a session whose last heartbeat was seen at seen has outlived its TTL at
// now, and if not, how long it has left.
func expiry(seen time.Time, ttlSeconds int32, now time.Time) (expired bool, left time.Duration) {
	ttl := time.Duration(ttlSeconds) * time.Second
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	left = seen.Add(ttl).Sub(now)
	return left < 0, left
}
