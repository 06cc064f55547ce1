package relay

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestRestarting(t *testing.T) {
	for name, tc := range map[string]struct {
		err  error
		want bool
	}{
		"no endpoints (the controller restarting)": {err: &UpgradeError{Status: http.StatusServiceUnavailable, Body: `no endpoints available for service "https:mirrord-relay:relay"`}, want: true},
		"the proxy not reaching the pod":           {err: &UpgradeError{Status: http.StatusBadGateway}, want: true},
		"the proxy timing out":                     {err: &UpgradeError{Status: http.StatusGatewayTimeout}, want: true},
		"the endpoint listed, its process killed": {err: &UpgradeError{Status: http.StatusInternalServerError,
			Body: `{"kind":"Status","status":"Failure","message":"error dialing backend: dial tcp 10.241.0.60:7200: connect: connection refused","code":500}`}, want: true},
		"another server error":                   {err: &UpgradeError{Status: http.StatusInternalServerError, Body: "etcdserver: request timed out"}},
		"forbidden":                              {err: &UpgradeError{Status: http.StatusForbidden}},
		"unauthorized":                           {err: &UpgradeError{Status: http.StatusUnauthorized}},
		"another error":                          {err: errors.New("dial tcp: connection refused")},
		"wrapped, as a member's dial reports it": {err: fmt.Errorf("cluster c2: %w", &UpgradeError{Status: http.StatusServiceUnavailable}), want: true},
	} {
		if got := Restarting(tc.err); got != tc.want {
			t.Errorf("%s: restarting = %v, want %v (%v)", name, got, tc.want, tc.err)
		}
	}
	if err := describeDialError(&UpgradeError{Status: http.StatusServiceUnavailable}, "mirrord-system"); !strings.Contains(err.Error(), "relay is not running") {
		t.Errorf("503: %v", err)
	}
}
