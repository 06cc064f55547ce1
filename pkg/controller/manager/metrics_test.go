package manager

import (
	"runtime"
	"testing"
)

func TestVMHWM(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("VmHWM is Linux's")
	}
	before := vmHWM()
	if before <= 0 {
		t.Fatalf("VmHWM = %d, want > 0", before)
	}
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = 1
	}
	if after := vmHWM(); after < before+32<<20 {
		t.Fatalf("VmHWM after touching 64 MiB = %d, before %d: the peak did not grow", after, before)
	}
	runtime.KeepAlive(buf)
}
