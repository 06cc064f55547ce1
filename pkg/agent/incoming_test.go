package agent

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/agent/internal/nstest"
	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

func incomingConfig(in mirrordv1alpha1.IncomingFeature) Config {
	return Config{Session: "mirrord-system/s", Token: "tok", Features: mirrordv1alpha1.Features{Network: mirrordv1alpha1.NetworkFeature{Incoming: in}}}
}

func TestIncomingMirror(t *testing.T) {
	c, tg := serving(t, incomingConfig(mirrordv1alpha1.IncomingFeature{}), nstest.Options{})
	link := nstest.Connect(t, tg)
	sub, err := c.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := make(chan string, 1)
	go func() {
		in, st, err := sub.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(st)
		got <- fmt.Sprintf("%s %s %s", in.Kind, strings.Split(in.Server, ":")[1], b)
	}()
	addr := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)
	if body := nstest.MustGet(t, link.Client, addr, "anyone", "/mirrored"); body != tg.Token+" GET /mirrored" {
		t.Errorf("the target answered %q while mirrored", body)
	}
	select {
	case g := <-got:
		if !strings.HasPrefix(g, "mirror 8080 GET /mirrored HTTP/1.1\r\n") {
			t.Errorf("mirrored: %q", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing mirrored")
	}
}

func TestIncomingStealFiltered(t *testing.T) {
	c, tg := serving(t, incomingConfig(mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeSteal,
		HTTPFilter: &mirrordv1alpha1.HTTPFilter{Header: "^X-User: alice$"}}), nstest.Options{})
	link := nstest.Connect(t, tg)
	sub, err := c.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// The session: answer each delivered request like a local server would.
	go func() {
		for {
			in, st, err := sub.Accept()
			if err != nil {
				return
			}
			go func(st net.Conn) {
				defer st.Close()
				req, err := http.ReadRequest(bufio.NewReader(st))
				if err != nil || in.Kind != protocol.IncomingRequest {
					return
				}
				body := "local " + req.URL.Path
				fmt.Fprintf(st, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			}(st)
		}
	}()
	addr := fmt.Sprintf("%s:%d", link.TargetIP, nstest.HTTPPort)
	if got := nstest.MustGet(t, link.Client, addr, "alice", "/mine"); got != "local /mine" {
		t.Errorf("alice's request: %q", got)
	}
	if got := nstest.MustGet(t, link.Client, addr, "bob", "/theirs"); got != tg.Token+" GET /theirs" {
		t.Errorf("bob's request: %q", got)
	}
	// Ending the subscription gives the port back.
	sub.Close()
	deadline := time.Now().Add(5 * time.Second)
	for nstest.MustGet(t, link.Client, addr, "alice", "/after") != tg.Token+" GET /after" {
		if time.Now().After(deadline) {
			t.Fatal("the port is still stolen after the subscription ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIncomingRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		in   mirrordv1alpha1.IncomingFeature
		want string
	}{
		"off":         {mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeOff}, "incoming traffic is off"},
		"probe port":  {mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeSteal, Ports: []int32{8080}}, "serves the pod's probes"},
		"bad regex":   {mirrordv1alpha1.IncomingFeature{Mode: mirrordv1alpha1.IncomingModeSteal, HTTPFilter: &mirrordv1alpha1.HTTPFilter{Path: "("}}, "httpFilter.path: invalid regular expression"},
		"all ignored": {mirrordv1alpha1.IncomingFeature{IgnorePorts: []int32{8080, 9090, 53}}, "listens on no TCP port"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := incomingConfig(tc.in)
			cfg.ProbePorts = []int32{8080}
			c, _ := serving(t, cfg, nstest.Options{})
			if _, err := c.Subscribe(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("subscribe: %v, want %q", err, tc.want)
			}
		})
	}
}
