package netns

import (
	"context"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestDoSwitchesOnlyItsThread enters another namespace many times at once and checks that
// code inside runs there and no other goroutine's thread is left in it.
func TestDoSwitchesOnlyItsThread(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	// A process in a fresh network namespace to enter.
	p, err := os.StartProcess("/bin/sleep", []string{"sleep", "60"}, &os.ProcAttr{Sys: &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill(); _, _ = p.Wait() })

	h, err := OfPID("/proc", p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	host := inode(t, "/proc/self/ns/net")
	target := inode(t, "/proc/"+strconv.Itoa(p.Pid)+"/ns/net")
	if host == target {
		t.Fatal("the helper process shares our namespace")
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			err := h.Do(func() error {
				if got := inode(t, "/proc/thread-self/ns/net"); got != target {
					t.Errorf("inside Do: namespace %d, want %d", got, target)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
			runtime.LockOSThread()
			if got := inode(t, "/proc/thread-self/ns/net"); got != host {
				t.Errorf("after Do: a thread left in namespace %d", got)
			}
			runtime.UnlockOSThread()
		})
	}
	wg.Wait()

	// Sockets stay where they were made: a listener in the target is not reachable here.
	l, err := h.Listen(context.Background(), "tcp", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Its loopback is down: nothing connects, not even from inside.
	if c, err := h.Dial(ctx, "tcp", l.Addr().String(), nil); err == nil {
		c.Close()
		t.Error("dial into a namespace whose loopback is down succeeded")
	}
	// From here, the same address is our own loopback's, where nothing listens on that port.
	if c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("a listener made in the target is reachable from the test's namespace")
	}
}
