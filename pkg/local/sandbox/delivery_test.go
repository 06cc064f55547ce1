//go:build linux

package sandbox

import (
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSupplierOutlivesGC: the socket supplier keeps serving across garbage collections (its
// descriptor was once an *os.File that a GC finalized, ending every stolen connection two
// minutes into a session) and ends when the parent hangs up.
func TestSupplierOutlivesGC(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("delivery sockets are transparent (IP_TRANSPARENT): needs root")
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		supplySockets(pair[1])
	}()
	d := &Delivery{supplier: os.NewFile(uintptr(pair[0]), "sandbox-sockets")}
	for i := range 3 {
		fd, err := d.socket()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if v, err := unix.GetsockoptInt(fd, unix.SOL_IP, unix.IP_TRANSPARENT); err != nil || v != 1 {
			t.Errorf("request %d: IP_TRANSPARENT = %d, %v; want 1", i, v, err)
		}
		unix.Close(fd)
		runtime.GC() // finalizers are queued by one GC and run after it
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	d.mu.Lock()
	d.supplier.Close()
	d.supplier = nil
	d.mu.Unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the supplier still serves after the parent hung up")
	}
	unix.Close(pair[1])
}
