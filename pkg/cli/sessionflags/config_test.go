package sessionflags

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/session"
)

const configYAML = `
target:
  path: deployment/api
  namespace: shop
kube_context: eu-1
feature:
  env:
    exclude: SECRET_*
    override: {A: from-file, B: from-file}
  fs:
    mode: write
    local: ["^/home/"]
  network:
    incoming:
      mode: steal
      http_filter:
        header_filter: "^X-User: me$"
      port_mapping: [[9090, 80]]
    outgoing:
      udp: false
      filter:
        remote: ["db:5432"]
    dns: false
agent:
  ttl: 60
  startup_timeout: 90
  log_level: debug
`

func load(t *testing.T, args ...string) (*Flags, *genericclioptions.ConfigFlags, time.Duration, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mirrord.yaml")
	if err := os.WriteFile(path, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	kube := genericclioptions.NewConfigFlags(false)
	kube.AddFlags(fs)
	o := &Flags{}
	o.AddFlags(fs)
	timeout := 2 * time.Minute
	fs.DurationVar(&timeout, "timeout", timeout, "")
	if err := fs.Parse(append([]string{"-f", path}, args...)); err != nil {
		t.Fatal(err)
	}
	var warn bytes.Buffer
	if err := o.LoadConfig(fs, Extra{Kube: kube, Timeout: &timeout}, &warn); err != nil {
		t.Fatal(err)
	}
	return o, kube, timeout, warn.String()
}

func TestConfigFileFillsTheSpec(t *testing.T) {
	o, kube, timeout, warn := load(t)
	if *kube.Namespace != "shop" || *kube.Context != "eu-1" || timeout != 90*time.Second {
		t.Errorf("namespace %q context %q timeout %s", *kube.Namespace, *kube.Context, timeout)
	}
	if !strings.Contains(warn, "agent.log_level ignored") {
		t.Errorf("warnings: %q", warn)
	}
	spec, err := o.Spec("shop", session.Owner{Name: "me"})
	if err != nil {
		t.Fatal(err)
	}
	want := mirrordv1alpha1.MirrordSessionSpec{
		Owner: "me", TTLSeconds: 60,
		Target: mirrordv1alpha1.Target{Kind: "Deployment", Name: "api", Namespace: "shop"},
		Features: mirrordv1alpha1.Features{
			Env: mirrordv1alpha1.EnvFeature{Exclude: []string{"SECRET_*"}, Override: map[string]string{"A": "from-file", "B": "from-file"}},
			FS:  mirrordv1alpha1.FSFeature{Mode: "write", Local: []string{"^/home/"}},
			Network: mirrordv1alpha1.NetworkFeature{
				Incoming: mirrordv1alpha1.IncomingFeature{Mode: "steal", HTTPFilter: &mirrordv1alpha1.HTTPFilter{Header: "^X-User: me$"},
					PortMapping: []mirrordv1alpha1.PortMapping{{Remote: 80, Local: 9090}}},
				Outgoing: mirrordv1alpha1.OutgoingFeature{UDP: ptr.To(false), Filter: &mirrordv1alpha1.OutgoingFilter{Remote: []string{"db:5432"}}},
				DNS:      mirrordv1alpha1.DNSFeature{Disabled: true},
			},
		},
	}
	if d := cmp.Diff(want, spec); d != "" {
		t.Errorf("spec (-want +got):\n%s", d)
	}
}

func TestFlagsOverrideTheConfigFile(t *testing.T) {
	o, kube, timeout, _ := load(t, "-t", "sts/db", "-n", "dev", "--incoming", "mirror", "--env-override", "B=from-flag",
		"--outgoing-local", ":53", "--timeout", "5s", "--session-ttl", "20")
	if *kube.Namespace != "dev" || timeout != 5*time.Second {
		t.Errorf("namespace %q timeout %s", *kube.Namespace, timeout)
	}
	// The filter of the file would now contradict the flag's mode: the error names the fix.
	if _, err := o.Spec("dev", session.Owner{Name: "me"}); err == nil || !strings.Contains(err.Error(), "add --steal") {
		t.Fatalf("want the file's HTTP filter refused with mirror mode, got %v", err)
	}
	o.HTTPHeaderFilter = ""
	spec, err := o.Spec("dev", session.Owner{Name: "me"})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Target.Kind != "StatefulSet" || spec.Target.Name != "db" || spec.TTLSeconds != 20 ||
		spec.Features.Network.Incoming.Mode != "mirror" ||
		spec.Features.Env.Override["A"] != "from-file" || spec.Features.Env.Override["B"] != "from-flag" ||
		spec.Features.Network.Outgoing.Filter.Remote != nil || spec.Features.Network.Outgoing.Filter.Local[0] != ":53" {
		t.Errorf("spec: %+v", spec)
	}
}

func TestConfigFileErrorsNameTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(path, []byte(`{"feature": {"network": {"incomming": "steal"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o := &Flags{}
	o.AddFlags(fs)
	if err := fs.Parse([]string{"--config-file", path}); err != nil {
		t.Fatal(err)
	}
	err := o.LoadConfig(fs, Extra{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), path+": feature.network.incomming: unknown key; did you mean \"incoming\"?") {
		t.Errorf("got %v", err)
	}
}

// TestSpecValidatesFeaturesAsTheAgentDoes: a value no flag check catches (an env pattern) is
// refused before the session is made, named by its field, by the check the member and the
// agent make.
func TestSpecValidatesFeaturesAsTheAgentDoes(t *testing.T) {
	o := &Flags{Target: "deploy/api", SessionTTL: 30, EnvExclude: []string{"[bad"}}
	_, err := o.Spec("dev", session.Owner{Name: "me"})
	if err == nil || !strings.Contains(err.Error(), `feature.env.exclude[0]: Invalid value: "[bad"`) {
		t.Errorf("Spec: %v, want the bad env pattern named by its field", err)
	}
}
