package steal

import (
	"strings"
	"testing"
)

func TestCheckPorts(t *testing.T) {
	for _, tc := range []struct {
		ports, probes []int32
		allow         bool
		want          string
	}{
		{[]int32{8080}, []int32{8081}, false, ""},
		{[]int32{8080, 8081}, []int32{8081}, false, "port 8081 serves the pod's probes"},
		{[]int32{8081}, []int32{8081}, true, ""},
		{[]int32{0}, nil, false, "port 0 is out of range"},
		{[]int32{70000}, nil, false, "port 70000 is out of range"},
	} {
		err := CheckPorts(tc.ports, tc.probes, tc.allow)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckPorts(%v, %v, %v) = %v, want %q", tc.ports, tc.probes, tc.allow, err, tc.want)
		}
	}
}
