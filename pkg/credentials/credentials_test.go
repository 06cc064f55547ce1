package credentials

import (
	"testing"
	"time"
)

func TestRenewDue(t *testing.T) {
	issued := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	day := Data("t", nil, issued, issued.Add(24*time.Hour))
	hour := Data("t", nil, issued, issued.Add(time.Hour)) // an API server that caps lifetimes
	for _, tc := range []struct {
		name string
		now  time.Time
		data map[string][]byte
		want bool
	}{
		{"fresh", issued.Add(time.Hour), day, false},
		{"just before two thirds", issued.Add(16*time.Hour - time.Second), day, false},
		{"two thirds gone", issued.Add(16*time.Hour + time.Second), day, true},
		{"expired", issued.Add(25 * time.Hour), day, true},
		{"a capped token, young", issued.Add(30 * time.Minute), hour, false},
		{"a capped token, two thirds gone", issued.Add(41 * time.Minute), hour, true},
		{"a legacy Secret without dates", issued, map[string][]byte{SecretKeyToken: []byte("t")}, true},
		{"garbled dates", issued, map[string][]byte{SecretKeyIssued: []byte("x"), SecretKeyExpiry: []byte("y")}, true},
		{"expiry before issue", issued, Data("t", nil, issued, issued.Add(-time.Hour)), true},
	} {
		if got := RenewDue(tc.now, tc.data); got != tc.want {
			t.Errorf("%s: RenewDue = %v, want %v", tc.name, got, tc.want)
		}
	}
}
