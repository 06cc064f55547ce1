package branchlife

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: t0.Add(d)} }
	branch := func(st mirrordv1alpha1.MirrordDBBranchStatus) *mirrordv1alpha1.MirrordDBBranch {
		return &mirrordv1alpha1.MirrordDBBranch{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.Time{Time: t0}},
			Spec: mirrordv1alpha1.MirrordDBBranchSpec{TTLSeconds: 300, CreationTimeoutSeconds: 60}, Status: st}
	}
	for name, tc := range map[string]struct {
		b        *mirrordv1alpha1.MirrordDBBranch
		sessions []string
		now      time.Duration
		want     Life
		expired  bool
	}{
		"in use: no expiry": {b: branch(mirrordv1alpha1.MirrordDBBranchStatus{}), sessions: []string{"b", "a"}, now: time.Hour,
			want: Life{Sessions: []string{"a", "b"}}},
		"the last session just ended": {b: branch(mirrordv1alpha1.MirrordDBBranchStatus{Sessions: []string{"a"}}), now: 10 * time.Minute,
			want: Life{LastUsed: at(10 * time.Minute), ExpireTime: at(15 * time.Minute)}},
		"unused, within its TTL": {b: branch(mirrordv1alpha1.MirrordDBBranchStatus{LastUsedTime: at(10 * time.Minute)}), now: 14 * time.Minute,
			want: Life{LastUsed: at(10 * time.Minute), ExpireTime: at(15 * time.Minute)}},
		"unused past its TTL": {b: branch(mirrordv1alpha1.MirrordDBBranchStatus{LastUsedTime: at(10 * time.Minute)}), now: 15 * time.Minute,
			want: Life{LastUsed: at(10 * time.Minute), ExpireTime: at(15 * time.Minute)}, expired: true},
		"never used: the TTL counts from the end of its creation timeout": {b: branch(mirrordv1alpha1.MirrordDBBranchStatus{}), now: 2 * time.Minute,
			want: Life{LastUsed: at(time.Minute), ExpireTime: at(6 * time.Minute)}},
		"never used, long past": {b: branch(mirrordv1alpha1.MirrordDBBranchStatus{}), now: 7 * time.Minute,
			want: Life{LastUsed: at(time.Minute), ExpireTime: at(6 * time.Minute)}, expired: true},
	} {
		got, expired := Decide(tc.b, tc.sessions, t0.Add(tc.now))
		if expired != tc.expired || !equalLife(got, tc.want) {
			t.Errorf("%s: %+v expired %v, want %+v %v", name, got, expired, tc.want, tc.expired)
		}
	}
}

func equalLife(a, b Life) bool {
	if len(a.Sessions) != len(b.Sessions) {
		return false
	}
	for i := range a.Sessions {
		if a.Sessions[i] != b.Sessions[i] {
			return false
		}
	}
	return equalTime(a.LastUsed, b.LastUsed) && equalTime(a.ExpireTime, b.ExpireTime)
}
