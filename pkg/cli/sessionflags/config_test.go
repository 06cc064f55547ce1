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
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/config"
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
	o, _, _, _ = load(t, "-t", "sts/db", "-n", "dev", "--incoming", "mirror", "--http-header-filter=", "--env-override", "B=from-flag",
		"--outgoing-local", ":53", "--timeout", "5s", "--session-ttl", "20")
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
	if err == nil || !strings.Contains(err.Error(), `--env-exclude "[bad": not a valid pattern`) {
		t.Errorf("Spec: %v, want the bad env pattern named by its field", err)
	}
}

// TestFeaturesFromFileAndFlags: the file's features are the base, each flag the command
// line sets replaces its field, and every bad value is named where it was written.
func TestFeaturesFromFileAndFlags(t *testing.T) {
	for name, tc := range map[string]struct {
		file     string
		args     []string
		check    func(mirrordv1alpha1.Features) bool
		wantErr  string
		wantWarn string
	}{
		"the file's filter without steal is ignored, as mirrord does": {file: `{"feature": {"network": {"incoming": {"http_filter": {"path_filter": "^/api"}}}}}`,
			check: func(f mirrordv1alpha1.Features) bool {
				return f.Network.Incoming.Mode == "mirror" && f.Network.Incoming.HTTPFilter == nil
			},
			wantWarn: "feature.network.incoming.http_filter ignored: it chooses which requests to steal, and the mode is not steal"},
		"--steal takes the file's filter": {file: `{"feature": {"network": {"incoming": {"http_filter": {"path_filter": "^/api"}}}}}`,
			args: []string{"--steal"}, check: func(f mirrordv1alpha1.Features) bool {
				return f.Network.Incoming.Mode == "steal" && f.Network.Incoming.HTTPFilter.Path == "^/api"
			}},
		"defaults without file or flags": {args: nil, check: func(f mirrordv1alpha1.Features) bool {
			return f.Network.Incoming.Mode == "mirror" && f.FS.Mode == "read" && f.Network.Incoming.HTTPFilter == nil
		}},
		"the file's mode stays when no flag sets it": {file: `{"feature": {"network": {"incoming": "steal"}, "fs": "write"}}`, check: func(f mirrordv1alpha1.Features) bool {
			return f.Network.Incoming.Mode == "steal" && f.FS.Mode == "write"
		}},
		"a flag replaces a list of the file": {file: `{"feature": {"fs": {"local": ["^/a", "^/b"]}}}`, args: []string{"--fs-local", "^/c"}, check: func(f mirrordv1alpha1.Features) bool {
			return len(f.FS.Local) == 1 && f.FS.Local[0] == "^/c"
		}},
		"a flag filter joins the file's": {file: `{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"path_filter": "^/api"}}}}}`,
			args: []string{"--http-method-filter", "GET"}, check: func(f mirrordv1alpha1.Features) bool {
				h := f.Network.Incoming.HTTPFilter
				return h.Path == "^/api" && h.Method == "GET"
			}},
		"an empty flag clears the file's filter": {file: `{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"path_filter": "^/api"}}}}}`,
			args: []string{"--http-path-filter="}, check: func(f mirrordv1alpha1.Features) bool { return f.Network.Incoming.HTTPFilter == nil }},
		"--no-outgoing beats the file": {file: `{"feature": {"network": {"outgoing": true}}}`, args: []string{"--no-outgoing"}, check: func(f mirrordv1alpha1.Features) bool {
			o := f.Network.Outgoing
			return !*o.TCP && !*o.UDP
		}},
		"a bad flag regex is named by the flag": {args: []string{"--fs-read-only", "(x"}, wantErr: `--fs-read-only "(x": not a valid regular expression`},
		"a flag port out of range":              {args: []string{"--port-mapping", "80:70000"}, wantErr: "--port-mapping 70000: ports are 1 to 65535"},
		"a port mapping that is not two ports":  {args: []string{"--port-mapping", "80"}, wantErr: `--port-mapping "80": write REMOTE:LOCAL`},
		"the file's include and a flag's exclude": {file: `{"feature": {"env": {"include": "A_*"}}}`, args: []string{"--env-exclude", "B"},
			wantErr: ": feature.env.include and --env-exclude are exclusive"},
		"the file's filter with a flag's mirror mode": {file: `{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"path_filter": "^/api"}}}}}`,
			args: []string{"--incoming", "mirror"}, wantErr: "HTTP filters choose which requests to steal: add --steal"},
		"a bad outgoing filter of the file is named by its key": {file: `{"feature": {"network": {"outgoing": {"filter": {"local": ["host:port"]}}}}}`,
			wantErr: ": feature.network.outgoing.filter: "},
		"--steal and --incoming off": {args: []string{"--steal", "--incoming", "off"}, wantErr: "--steal contradicts --incoming=off"},
	} {
		t.Run(name, func(t *testing.T) {
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o := &Flags{}
			o.AddFlags(fs)
			args := append([]string{"-t", "deploy/api"}, tc.args...)
			if tc.file != "" {
				path := filepath.Join(t.TempDir(), "mirrord.json")
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "-f", path)
			}
			if err := fs.Parse(args); err != nil {
				t.Fatal(err)
			}
			var warn bytes.Buffer
			if err := o.LoadConfig(fs, Extra{}, &warn); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(warn.String(), tc.wantWarn) {
				t.Errorf("warnings %q, want %q", warn.String(), tc.wantWarn)
			}
			spec, err := o.Spec("dev", session.Owner{Name: "me"})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Spec: %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(spec.Features) {
				t.Errorf("features: %+v", spec.Features)
			}
		})
	}
}

func TestReadEnvFile(t *testing.T) {
	dir := t.TempDir()
	env := filepath.Join(dir, ".env")
	if err := os.WriteFile(env, []byte("# local settings\nREGION=us\nQUOTED=\"a b\"\nexport TOKEN=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "mirrord.json")
	if err := os.WriteFile(cfg, []byte(`{"feature": {"env": {"env_file": "`+filepath.Join(dir, "missing.env")+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args    []string
		want    map[string]string
		wantErr string
	}{
		"none":                             {},
		"the flag":                         {args: []string{"--env-file", env}, want: map[string]string{"REGION": "us", "QUOTED": "a b", "TOKEN": "x"}},
		"the flag beats the config file's": {args: []string{"-f", cfg, "--env-file", env}, want: map[string]string{"REGION": "us", "QUOTED": "a b", "TOKEN": "x"}},
		"the config file's, missing":       {args: []string{"-f", cfg}, wantErr: "config file " + cfg + ": feature.env.env_file " + filepath.Join(dir, "missing.env")},
		"a missing flag file":              {args: []string{"--env-file", "/nonexistent/.env"}, wantErr: "--env-file /nonexistent/.env: open /nonexistent/.env"},
	} {
		t.Run(name, func(t *testing.T) {
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o := &Flags{}
			o.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if err := o.LoadConfig(fs, Extra{}, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			got, err := o.ReadEnvFile()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" && !(len(tc.want) == 0 && len(got) == 0) {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestDefaultConfigFile: with no -f and no $MIRRORD_CONFIG_FILE, the project's
// .mirrord/mirrord.json is read (and said so); -f still wins.
func TestDefaultConfigFile(t *testing.T) {
	t.Setenv("MIRRORD_CONFIG_FILE", "")
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.MkdirAll(".mirrord", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(".mirrord/mirrord.json", []byte(`{"target": "deploy/from-default"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.json")
	if err := os.WriteFile(other, []byte(`{"target": "deploy/from-flag"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args       []string
		wantTarget string
		wantSaid   bool
	}{{nil, "deploy/from-default", true}, {[]string{"-f", other}, "deploy/from-flag", false}} {
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		o := &Flags{}
		o.AddFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var warn bytes.Buffer
		if err := o.LoadConfig(fs, Extra{}, &warn); err != nil {
			t.Fatal(err)
		}
		if o.Target != tc.wantTarget || strings.Contains(warn.String(), "using config file .mirrord/mirrord.json") != tc.wantSaid {
			t.Errorf("%v: target %q, said %q", tc.args, o.Target, warn.String())
		}
	}
}

// TestTargetlessByDefault: with no target anywhere a session is targetless, as mirrord's, and
// the command says so; settings of incoming traffic are said to be ignored.
func TestTargetlessByDefault(t *testing.T) {
	t.Setenv("MIRRORD_CONFIG_FILE", "")
	t.Chdir(t.TempDir())
	file := filepath.Join(t.TempDir(), "mirrord.json")
	if err := os.WriteFile(file, []byte(`{"target": "targetless"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args       []string
		wantTarget string
		wantSaid   []string
	}{
		{nil, "targetless", []string{"no target given: running targetless"}},
		{[]string{"--steal", "--ports", "80"}, "targetless", []string{"--steal is ignored: a targetless session receives no incoming traffic", "--ports is ignored"}},
		{[]string{"-f", file}, "targetless", nil},
		{[]string{"-t", "deploy/api", "--steal"}, "deploy/api", nil},
	} {
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		o := &Flags{}
		o.AddFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var warn bytes.Buffer
		if err := o.LoadConfig(fs, Extra{}, &warn); err != nil {
			t.Fatal(err)
		}
		if o.Target != tc.wantTarget {
			t.Errorf("%v: target %q, want %q", tc.args, o.Target, tc.wantTarget)
		}
		for _, s := range tc.wantSaid {
			if !strings.Contains(warn.String(), s) {
				t.Errorf("%v: said %q, want %q in it", tc.args, warn.String(), s)
			}
		}
		if len(tc.wantSaid) == 0 && warn.Len() > 0 {
			t.Errorf("%v: said %q, want nothing", tc.args, warn.String())
		}
		spec, err := o.Spec("shop", session.Owner{Name: "alice"})
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if want := tc.wantTarget == "targetless"; spec.Target.IsTargetless() != want {
			t.Errorf("%v: spec target %+v", tc.args, spec.Target)
		}
	}
}

// TestCorpusMakesSessions: every config of pkg/config's corpus that the loader accepts also
// makes a session spec through the command line's whole path (LoadConfig, then Spec), with no
// flag given: what a user of it would run.
func TestCorpusMakesSessions(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "testdata", "corpus", "*"))
	if err != nil || len(files) < 20 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	t.Setenv("MIRRORD_ENV_KEY", "k")
	made := 0
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o := &Flags{}
			o.AddFlags(fs)
			if err := fs.Parse([]string{"-f", path}); err != nil {
				t.Fatal(err)
			}
			if err := o.LoadConfig(fs, Extra{}, &bytes.Buffer{}); err != nil {
				if _, refused := config.Load(path); refused != nil {
					return // the loader's own refusal (TestCorpus checks it)
				}
				t.Fatal(err)
			}
			if _, err := o.Spec("dev", session.Owner{Name: "me"}); err != nil {
				t.Fatal(err)
			}
			made++
		})
	}
	if made < 20 {
		t.Errorf("%d of %d configs made a session spec", made, len(files))
	}
}
