package steal

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/netns"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/httpconn"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/httpfilter"
)

// h2specPort is where the conformance test's HTTP/2 target listens in its pod.
const h2specPort = 8092

// buildH2Spec builds the h2spec conformance tool pinned in hack/tools (the Go module proxy
// has it; the build cache keeps it after the first time).
func buildH2Spec(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	tools := filepath.Join(filepath.Dir(file), "..", "..", "..", "hack", "tools")
	bin := filepath.Join(t.TempDir(), "h2spec")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/summerwind/h2spec/cmd/h2spec")
	cmd.Dir = tools
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building h2spec: %v\n%s", err, out)
	}
	return bin
}

// h2spec runs the conformance tool against addr from namespace ns and returns the cases that
// passed.
func h2spec(t *testing.T, bin string, ns *netns.Handle, addr netip.AddrPort) []string {
	t.Helper()
	report := filepath.Join(t.TempDir(), "junit.xml")
	var out []byte
	err := ns.Do(func() error { // a child forked from a thread in a namespace starts in it
		var err error
		out, err = exec.Command(bin, "-h", addr.Addr().String(), "-p", fmt.Sprint(addr.Port()), "-o", "2", "-j", report).CombinedOutput()
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			err = nil // failed cases: the report says which
		}
		return err
	})
	if err != nil {
		t.Fatalf("h2spec: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("h2spec wrote no report: %v\n%s", err, out)
	}
	var suites struct {
		Suites []struct {
			Cases []struct {
				Package string    `xml:"package,attr"`
				Name    string    `xml:"classname,attr"`
				Failure *struct{} `xml:"failure"`
				Error   *struct{} `xml:"error"`
				Skipped *struct{} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(raw, &suites); err != nil {
		t.Fatal(err)
	}
	var passed []string
	for _, s := range suites.Suites {
		for _, c := range s.Cases {
			if c.Failure == nil && c.Error == nil && c.Skipped == nil {
				passed = append(passed, c.Package+" "+c.Name)
			}
		}
	}
	if len(passed) == 0 {
		t.Fatalf("h2spec passed nothing:\n%s", out)
	}
	return passed
}

// TestH2Spec runs the h2spec HTTP/2 conformance suite against a cleartext HTTP/2 target, then
// against the same target through a filtered steal: every case the target alone passes must
// pass through the agent's HTTP/2 server too.
func TestH2Spec(t *testing.T) {
	bin := buildH2Spec(t)
	_, link, ns := targetWithClient(t)
	ln, err := ns.Listen(t.Context(), "tcp", fmt.Sprintf(":%d", h2specPort), nil)
	if err != nil {
		t.Fatal(err)
	}
	target := &http.Server{Protocols: new(http.Protocols), ErrorLog: httpconn.DiscardLog,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "target") })}
	target.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = target.Serve(ln) }()
	t.Cleanup(func() { target.Close() })
	addr := netip.AddrPortFrom(netip.MustParseAddr(link.TargetIP), h2specPort)

	alone := h2spec(t, bin, link.Client, addr)

	filter, err := httpfilter.Compile(&mirrordv1alpha1.HTTPFilter{Header: "^X-User: alice$"})
	if err != nil {
		t.Fatal(err)
	}
	var s *Stealer
	s, err = Start(t.Context(), ns, NFTables, "h2spec", func(c net.Conn, orig netip.AddrPort) {
		_ = Serve(context.Background(), c, filter, RoundTripFunc(func(*http.Request) (*http.Response, error) {
			return nil, fmt.Errorf("no request of h2spec is the session's")
		}), func(ctx context.Context) (net.Conn, error) { return s.DialOriginal(ctx, orig, ClientOf(c)) })
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Steal(h2specPort, true); err != nil {
		t.Fatal(err)
	}
	stolen := h2spec(t, bin, link.Client, addr)
	for _, c := range alone {
		if !slices.Contains(stolen, c) {
			t.Errorf("through the steal, h2spec fails %q, which the target alone passes", c)
		}
	}
	t.Logf("h2spec: the target alone passes %d cases, through a filtered steal %d", len(alone), len(stolen))
}
