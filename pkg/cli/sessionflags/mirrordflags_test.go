package sessionflags

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/session"
)

// TestMirrordFlagNames: a mirrord user's command line works as it is.
func TestMirrordFlagNames(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.SetNormalizeFunc(NormalizeFlagName)
	o := &Flags{}
	o.AddFlags(fs)
	timeout := 2 * time.Minute
	fs.DurationVar(&timeout, "timeout", timeout, "")
	args := []string{"-t", "deploy/api", "--no-remote-dns", "--no-tcp-outgoing", "--override-env-vars-exclude", "A_*;B",
		"--agent-ttl", "60", "--agent-startup-timeout", "90", "--no-telemetry", "--agent-image", "x/y:z", "--fs-mode", "localwithoverrides"}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	var warn bytes.Buffer
	if err := o.LoadConfig(fs, Extra{Timeout: &timeout}, &warn); err != nil {
		t.Fatal(err)
	}
	spec, err := o.Spec("dev", session.Owner{Name: "me"})
	if err != nil {
		t.Fatal(err)
	}
	f := spec.Features
	if !f.Network.DNS.Disabled || f.Network.Outgoing.TCP == nil || *f.Network.Outgoing.TCP || f.Network.Outgoing.UDP != nil ||
		strings.Join(f.Env.Exclude, ",") != "A_*,B" || spec.TTLSeconds != 60 || timeout != 90*time.Second || f.FS.Mode != "local" {
		t.Errorf("spec %+v, timeout %s", spec, timeout)
	}
	for _, w := range []string{"--no-telemetry ignored: kubectl-mirrord sends no telemetry", "--agent-image ignored"} {
		if !strings.Contains(warn.String(), w) {
			t.Errorf("warnings %q lack %q", warn.String(), w)
		}
	}
	fs = pflag.NewFlagSet("test", pflag.ContinueOnError)
	o = &Flags{}
	o.AddFlags(fs)
	if err := fs.Parse([]string{"--agent-startup-timeout", "0"}); err != nil {
		t.Fatal(err)
	}
	if err := o.LoadConfig(fs, Extra{Timeout: &timeout}, &warn); err == nil || !strings.Contains(err.Error(), "use 1 to 3600 seconds") {
		t.Errorf("--agent-startup-timeout 0: %v", err)
	}
}

func TestDefaultMissingConfigFile(t *testing.T) {
	const def = "./.mirrord/mirrord.json"
	for _, tc := range []struct{ in, want []string }{
		{[]string{"exec", "-f", "--", "ls"}, []string{"exec", "-f", def, "--", "ls"}},
		{[]string{"exec", "-f", "-t", "deploy/api", "--", "ls", "-f"}, []string{"exec", "-f", def, "-t", "deploy/api", "--", "ls", "-f"}},
		{[]string{"exec", "-f", "my.json", "--", "ls"}, []string{"exec", "-f", "my.json", "--", "ls"}},
		{[]string{"sessions", "create", "--config-file"}, []string{"sessions", "create", "--config-file", def}},
		{[]string{"port-forward", "-f", "-L", "80:api:80"}, []string{"port-forward", "-f", def, "-L", "80:api:80"}},
		{[]string{"sessions", "-f"}, []string{"sessions", "-f"}}, // not a session's flag there
		{[]string{"exec", "--config-file=x.json", "--", "ls"}, []string{"exec", "--config-file=x.json", "--", "ls"}},
	} {
		if got := DefaultMissingConfigFile(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}
