package owner

import (
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestListeningInodes(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0 100 0 0 10 0
   2: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0 100 0 0 10 0
   3: garbage
`
	if got := listeningInodes(strings.NewReader(table), 8080); len(got) != 1 || got[0] != "111" {
		t.Errorf("port 8080: %v, want the listener only (not an established connection)", got)
	}
	if got := listeningInodes(strings.NewReader(table), 22); len(got) != 1 || got[0] != "333" {
		t.Errorf("port 22: %v", got)
	}
	if got := listeningInodes(strings.NewReader(table), 9); len(got) != 0 {
		t.Errorf("port 9: %v", got)
	}
}

func TestInTree(t *testing.T) {
	parents := map[int]int{10: 1, 11: 10, 12: 11, 20: 1, 30: 30}
	for _, tc := range []struct {
		pid, root int
		want      bool
	}{{10, 10, true}, {12, 10, true}, {20, 10, false}, {1, 10, false}, {30, 10, false}, {99, 10, false}} {
		if got := inTree(tc.pid, tc.root, parents); got != tc.want {
			t.Errorf("inTree(%d, %d) = %v", tc.pid, tc.root, got)
		}
	}
}

// TestChecker: a port the command's tree listens on is its own; one another program on the
// machine listens on (this test's own listener) is not.
func TestChecker(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ports' owners are read from /proc")
	}
	mine, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close()
	// The "command": a process that listens on a port of its own.
	cmd := exec.Command("python3", "-c", "import socket,time\ns=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(30)")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("no python3: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	buf := make([]byte, 16)
	n, _ := out.Read(buf)
	theirs, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		t.Fatal(err)
	}
	var c Checker
	if owned, _ := c.Owns(uint16(theirs)); owned {
		t.Error("a port owned before the command runs")
	}
	c.SetRoot(cmd.Process.Pid)
	for port, want := range map[int]bool{theirs: true, mine.Addr().(*net.TCPAddr).Port: false, 1: false} {
		if owned, err := c.Owns(uint16(port)); err != nil || owned != want {
			t.Errorf("port %d: owned %v (%v), want %v", port, owned, err, want)
		}
	}
}

// TestCheckerRemembersOnlyYes: a port the command does not listen on yet is its own as soon
// as it does (a no is never remembered); a yes is, for a while.
func TestCheckerRemembersOnlyYes(t *testing.T) {
	listening, calls := false, 0
	c := &Checker{lookup: func(uint16, int) (bool, error) { calls++; return listening, nil }}
	c.SetRoot(42)
	if owned, _ := c.Owns(8080); owned {
		t.Fatal("owned before it listens")
	}
	listening = true
	if owned, _ := c.Owns(8080); !owned {
		t.Fatal("a no was remembered: the port is not the command's once it listens")
	}
	if _, _ = c.Owns(8080); calls != 2 {
		t.Errorf("%d lookups, want the yes remembered", calls)
	}
}
