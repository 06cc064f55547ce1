package steal

import (
	"strings"
	"testing"
)

func TestCheckPorts(t *testing.T) {
	for _, tc := range []struct {
		ports []int32
		want  string
	}{
		{[]int32{8080, 8081}, ""},
		{[]int32{0}, "port 0 is out of range"},
		{[]int32{70000}, "port 70000 is out of range"},
	} {
		err := CheckPorts(tc.ports)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckPorts(%v) = %v, want %q", tc.ports, err, tc.want)
		}
	}
}
