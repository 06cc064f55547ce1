package nstest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
)

// Get sends one HTTP/1.1 GET for path over a fresh connection made in ns (with "X-User:
// user" when user is set) and returns the answer's body.
func Get(ns *netns.Handle, addr, user, path string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := ns.Dial(ctx, "tcp", addr, nil)
	if err != nil {
		return "", fmt.Errorf("dial %s: %w", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	header := ""
	if user != "" {
		header = "X-User: " + user + "\r\n"
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: api\r\n%sConnection: close\r\n\r\n", path, header)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", fmt.Errorf("GET %s%s as %q: %w", addr, path, user, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// MustGet is Get that fails the test on an error.
func MustGet(t *testing.T, ns *netns.Handle, addr, user, path string) string {
	t.Helper()
	body, err := Get(ns, addr, user, path, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return body
}
