package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// The same configuration in the three formats, written as mirrord users write it.
var full = map[string]string{
	"json": `{
  "target": {"path": "deployment/api/container/app", "namespace": "shop"},
  "kube_context": "eu-1",
  "operator": true,
  "feature": {
    "env": {"include": "DB_*;API_KEY", "override": {"LOG_LEVEL": "debug"}},
    "fs": {"mode": "read", "read_write": ["^/tmp/.*"], "local": "^/home/.*"},
    "network": {
      "incoming": {
        "mode": "steal",
        "http_filter": {"header_filter": "^X-User: me$", "ports": [8080]},
        "port_mapping": [[9090, 80]],
        "ignore_ports": [9999]
      },
      "outgoing": {"tcp": true, "udp": false, "filter": {"local": ["tcp://10.0.0.0/8:5432", ":53"]}},
      "dns": {"enabled": true}
    }
  },
  "agent": {"ttl": 60, "startup_timeout": 90, "image": "ghcr.io/metalbear-co/mirrord:latest"}
}`,
	"yaml": `
target:
  path: deployment/api/container/app
  namespace: shop
kube_context: eu-1
operator: true
feature:
  env:
    include: DB_*;API_KEY
    override:
      LOG_LEVEL: debug
  fs:
    mode: read
    read_write: ["^/tmp/.*"]
    local: "^/home/.*"
  network:
    incoming:
      mode: steal
      http_filter:
        header_filter: "^X-User: me$"
        ports: [8080]
      port_mapping: [[9090, 80]]
      ignore_ports: [9999]
    outgoing:
      tcp: true
      udp: false
      filter:
        local: ["tcp://10.0.0.0/8:5432", ":53"]
    dns:
      enabled: true
agent:
  ttl: 60
  startup_timeout: 90
  image: ghcr.io/metalbear-co/mirrord:latest
`,
	"toml": `
kube_context = "eu-1"
operator = true

[target]
path = "deployment/api/container/app"
namespace = "shop"

[feature.env]
include = "DB_*;API_KEY"
override = { LOG_LEVEL = "debug" }

[feature.fs]
mode = "read"
read_write = ["^/tmp/.*"]
local = "^/home/.*"

[feature.network.incoming]
mode = "steal"
http_filter = { header_filter = "^X-User: me$", ports = [8080] }
port_mapping = [[9090, 80]]
ignore_ports = [9999]

[feature.network.outgoing]
tcp = true
udp = false
filter = { local = ["tcp://10.0.0.0/8:5432", ":53"] }

[feature.network.dns]
enabled = true

[agent]
ttl = 60
startup_timeout = 90
image = "ghcr.io/metalbear-co/mirrord:latest"
`,
}

func TestParseFormats(t *testing.T) {
	want := &File{
		Target: ptr.To("deployment/api/container/app"), Namespace: ptr.To("shop"), KubeContext: ptr.To("eu-1"),
		Features: mirrordv1alpha1.Features{
			Env: mirrordv1alpha1.EnvFeature{Include: []string{"DB_*", "API_KEY"}, Override: map[string]string{"LOG_LEVEL": "debug"}},
			FS:  mirrordv1alpha1.FSFeature{Mode: "read", ReadWrite: []string{"^/tmp/.*"}, Local: []string{"^/home/.*"}},
			Network: mirrordv1alpha1.NetworkFeature{
				Incoming: mirrordv1alpha1.IncomingFeature{Mode: "steal", HTTPFilter: &mirrordv1alpha1.HTTPFilter{Header: "^X-User: me$"},
					Ports: []int32{8080}, IgnorePorts: []int32{9999}, PortMapping: []mirrordv1alpha1.PortMapping{{Remote: 80, Local: 9090}}},
				Outgoing: mirrordv1alpha1.OutgoingFeature{TCP: ptr.To(true), UDP: ptr.To(false),
					Filter: &mirrordv1alpha1.OutgoingFilter{Local: []string{"10.0.0.0/8:5432", ":53"}}},
			},
		},
		SessionTTL:     ptr.To[int32](60),
		StartupTimeout: ptr.To(90 * time.Second),
		Warnings: []string{
			"operator ignored: sessions always run through the installation's controller",
			"agent.image ignored: " + installationDecides,
		},
	}
	for format, text := range full {
		t.Run(format, func(t *testing.T) {
			got, err := Parse([]byte(text), format)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestShortForms(t *testing.T) {
	for _, tc := range []struct {
		text  string
		check func(*File) bool
	}{
		{`{"target": "deploy/api"}`, func(f *File) bool { return *f.Target == "deploy/api" }},
		{`{"target": {"path": {"deployment": "api", "container": "app"}}}`, func(f *File) bool { return *f.Target == "deployment/api" && *f.Container == "app" }},
		{`{"target": {"path": {"stateful_set": "db"}}}`, func(f *File) bool { return *f.Target == "statefulset/db" }},
		{`{"target": {"deployment": "api", "container": "app", "namespace": "shop"}}`, func(f *File) bool {
			return *f.Target == "deployment/api" && *f.Container == "app"
		}},
		{`{"target": {"path": {"replica_set": "api-7d9"}}}`, func(f *File) bool { return *f.Target == "replicaset/api-7d9" }},
		{`{"target": "targetless"}`, func(f *File) bool { return *f.Target == "targetless" }},
		{`{"profile": "shop/strict"}`, func(f *File) bool { return f.Features.Profile == "shop/strict" }},
		{`{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"any_of": [{"path": "^/a"}, {"path": "^/b/(?!x)"}]}}}}}`, func(f *File) bool {
			hf := f.Features.Network.Incoming.HTTPFilter
			return len(hf.AnyOf) == 2 && hf.AnyOf[0].Path == "^/a" && hf.AnyOf[1].Path == "^/b/(?!x)"
		}},
		// any_of mixing kinds, with mirrord's body and jq filters.
		{`{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"any_of": [{"header": "^baggage: .*mirrord-session=k"}, {"path": "^/api/my$"}, {"query": "startswith(\"X-A\")"}, {"body": "json", "query": "$.user", "matches": "^me$"}]}}}}}`, func(f *File) bool {
			a := f.Features.Network.Incoming.HTTPFilter.AnyOf
			return len(a) == 4 && a[0].Header != "" && a[1].Path != "" && a[2].HeaderJQ == `startswith("X-A")` && a[3].Body != nil && a[3].Body.Query == "$.user" && a[3].Body.Matches == "^me$"
		}},
		{`{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"body_filter": {"body": "json", "query": "$.library.books[*]", "matches": "^\\d{3,5}$"}, "header_filter_jq": "test(\"^X-User: \")"}}}}}`, func(f *File) bool {
			hf := f.Features.Network.Incoming.HTTPFilter
			return hf.Body != nil && hf.Body.Query == "$.library.books[*]" && hf.Body.Matches == `^\d{3,5}$` && hf.HeaderJQ == `test("^X-User: ")`
		}},
		// A filter beside mirror mode is kept for a --steal flag (sessionflags drops it otherwise).
		{`{"feature": {"network": {"incoming": {"http_filter": {"path_filter": "^/x"}}}}}`, func(f *File) bool {
			return f.Features.Network.Incoming.HTTPFilter.Path == "^/x" && len(f.Warnings) == 0
		}},
		{`{"feature": {"network": true}}`, func(f *File) bool { return f.Features.Network.Incoming.Mode == "" && !f.Features.Network.DNS.Disabled }},
		{`{"feature": {"network": false}}`, func(f *File) bool {
			n := f.Features.Network
			return n.Incoming.Mode == "off" && n.DNS.Disabled && n.Outgoing.TCP != nil && !*n.Outgoing.TCP && n.Outgoing.UDP != nil && !*n.Outgoing.UDP
		}},
		// mirrord users keep the kubelet's probes out of a steal with a look-ahead.
		{`{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"header_filter": "^User-Agent: (?!kube-probe)"}}}}}`, func(f *File) bool {
			return f.Features.Network.Incoming.HTTPFilter.Header == "^User-Agent: (?!kube-probe)"
		}},
		{`{"target": {"cron_job": "nightly", "container": "run"}}`, func(f *File) bool { return *f.Target == "cronjob/nightly" && *f.Container == "run" }},
		{`{"target": {"path": {"job": "migrate"}}}`, func(f *File) bool { return *f.Target == "job/migrate" }},
		{`{"target": {"path": {"service": "api"}, "namespace": "shop"}}`, func(f *File) bool { return *f.Target == "service/api" && *f.Namespace == "shop" }},
		{`{"target": {"rollout": "api"}}`, func(f *File) bool { return *f.Target == "rollout/api" }},
		{`{"target": {"labels": {"app": "api", "tier": "web"}, "container": "app"}}`, func(f *File) bool {
			return *f.Target == "labels/app=api,tier=web" && *f.Container == "app"
		}},
		{`{"target": "svc/api"}`, func(f *File) bool { return *f.Target == "svc/api" }},
		{`{"target": {"path": "targetless", "namespace": "shop"}}`, func(f *File) bool { return *f.Target == "targetless" && *f.Namespace == "shop" }},
		{`{"feature": {"env": false}}`, func(f *File) bool { return f.Features.Env.Disabled }},
		{`{"feature": {"fs": "localwithoverrides"}}`, func(f *File) bool { return f.Features.FS.Mode == "local" }},
		{`{"feature": {"fs": false}}`, func(f *File) bool { return f.Features.FS.Mode == "local" }},
		{`{"feature": {"network": {"incoming": "off", "outgoing": false, "dns": false}}}`, func(f *File) bool {
			n := f.Features.Network
			return n.Incoming.Mode == "off" && !*n.Outgoing.TCP && !*n.Outgoing.UDP && n.DNS.Disabled
		}},
		{`{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"all_of": [{"header": "^a: b$"}, {"path": "^/x"}]}}}}}`, func(f *File) bool {
			a := f.Features.Network.Incoming.HTTPFilter.AllOf
			return len(a) == 2 && a[0].Header == "^a: b$" && a[1].Path == "^/x"
		}},
		{`{"feature": {"network": {"incoming": {"mode": "steal", "http_header_filter": {"filter": "^a: b$", "ports": [80]}}}}}`, func(f *File) bool {
			in := f.Features.Network.Incoming
			return in.HTTPFilter.Header == "^a: b$" && in.Ports[0] == 80
		}},
		{`{"feature": {"network": {"incoming": {"http_filter": {"ports": [80]}}}}}`, func(f *File) bool {
			in := f.Features.Network.Incoming
			return in.HTTPFilter == nil && in.Ports[0] == 80
		}},
		{`{"feature": {"network": {"incoming": {"ports": 8080}}}}`, func(f *File) bool { return f.Features.Network.Incoming.Ports[0] == 8080 }},
		{`{"feature": {"network": {"dns": {"enabled": true, "filter": {"local": ["db.example.com", "cache:6379"]}}}}}`, func(f *File) bool {
			d := f.Features.Network.DNS
			return !d.Disabled && d.Filter != nil && len(d.Filter.Local) == 2 && d.Filter.Remote == nil
		}},
		{`{"feature": {"env": {"unset": "AWS_PROFILE", "mapping": {".+_TIMEOUT": "1000"}, "env_file": ".env.local"}}}`, func(f *File) bool {
			e := f.Features.Env
			return len(e.Unset) == 1 && e.Unset[0] == "AWS_PROFILE" && e.Mapping[".+_TIMEOUT"] == "1000" && *f.EnvFile == ".env.local"
		}},
		{`{"feature": {"fs": {"mode": "read", "mapping": {"^/home/me/dev/config/(?<app>[^/]+)": "/etc/${app}"}}}}`, func(f *File) bool {
			return f.FSMapping["^/home/me/dev/config/(?<app>[^/]+)"] == "/etc/${app}" && f.Features.FS.Mode == "read"
		}},
		{``, func(f *File) bool { return f.Target == nil }},
		// mirrord's default ttl (1) and a long start-up wait: accepted, brought in range, said.
		{`{"agent": {"ttl": 1, "startup_timeout": 100000}}`, func(f *File) bool {
			return *f.SessionTTL == 5 && *f.StartupTimeout == 86400*time.Second && len(f.Warnings) == 2 &&
				strings.Contains(f.Warnings[0], "agent.ttl 1: a session lives 5 to 3600 seconds") && strings.Contains(f.Warnings[1], "using 86400 seconds")
		}},
	} {
		f, err := Parse([]byte(tc.text), "yaml") // YAML is a superset of JSON
		if err != nil {
			t.Errorf("%s: %v", tc.text, err)
			continue
		}
		if !tc.check(f) {
			t.Errorf("%s: parsed as %+v", tc.text, f)
		}
	}
}

// Every bad key or value is an error naming the key and saying what to do.
func TestErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		format, text string
		want         []string
	}{
		{"json", `{"taget": "deploy/api"}`, []string{"taget: unknown key", `did you mean "target"`}},
		{"json", `{"profile": "Shop/x"}`, []string{"profile", `"Shop/x": profile "Shop/x": namespace`}},
		{"yaml", "feature:\n  network:\n    incoming:\n      mode: stael\n", []string{"feature.network.incoming.mode", `"stael" is not one of mirror, steal, off`}},
		{"toml", "[feature.network.incoming]\nmode = \"steal\"\nhttp_filter = { header_filter = \"(\" }\n", []string{"feature.network.incoming.http_filter.header_filter", `"(": not a valid regular expression`}},
		{"json", `{"feature": {"fs": {"read_only": ["^/ok", "(x"]}}}`, []string{"feature.fs.read_only[1]", `"(x": not a valid regular expression`}},
		{"json", `{"feature": {"env": {"exclude": "A;[bad"}}}`, []string{"feature.env.exclude[1]", `"[bad": not a valid pattern`}},
		{"json", `{"feature": {"env": {"mapping": {"(": "x"}}}}`, []string{"feature.env.mapping[(]", `"(": not a valid regular expression`}},
		{"json", `{"feature": {"fs": {"mapping": {"^/a/(": "/b"}}}}`, []string{"feature.fs.mapping[^/a/(]", "not a valid regular expression"}},
		{"json", `{"feature": {"fs": {"mapping": {"/tmp/x": "/b"}}}}`, []string{"feature.fs.mapping[/tmp/x]", "start the pattern with ^"}},
		{"json", `{"feature": {"fs": {"mapping": {"^/a/b": "b"}}}}`, []string{"feature.fs.mapping[^/a/b]", "not an absolute path"}},
		{"json", `{"feature": {"env": {"unset": ["A=B"]}}}`, []string{"feature.env.unset[0]", "not a variable name"}},
		{"json", `{"feature": {"network": {"incoming": {"port_mapping": [[0, 80]]}}}}`, []string{"feature.network.incoming.port_mapping[0]", "0: ports are 1 to 65535"}},
		{"json", `{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"header_filter": "^(?!kube-probe"}}}}}`, []string{"header_filter", "not a valid regular expression"}},
		{"json", `{"feature": {"fs": {"read_only": ["^/(?!proc)"]}}}`, []string{"feature.fs.read_only[0]", "look-arounds are not supported here"}},
		{"json", `{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"all_of": [{"path": "/"}, {"path": "("}]}}}}}`, []string{"feature.network.incoming.http_filter.all_of[1]", `"(": not a valid regular expression`}},
		{"json", `{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"body_filter": {"body": "json", "query": "user", "matches": "x"}}}}}}`, []string{"feature.network.incoming.http_filter.body_filter.query", `"user": not a valid JSONPath (RFC 9535) query`}},
		{"json", `{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"body_filter": {"body": "xml", "query": "$", "matches": "x"}}}}}}`, []string{"body_filter.body", `"xml" is not one of json`}},
		{"json", `{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"body_filter": {"body": "json", "query": "$"}}}}}}`, []string{"body_filter", "needs body, query and matches"}},
		{"json", `{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"header_filter_jq": "startswith("}}}}}`, []string{"http_filter.header_filter_jq", "not a valid jq program"}},
		{"json", `{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"any_of": [{"path": "/", "method": "GET"}]}}}}}`, []string{"any_of[0]", "exactly one of header, path, method, query"}},
		{"json", `{"feature": {"network": {"incoming": {"ignore_ports": [70000]}}}}`, []string{"ignore_ports[0]", "70000: ports are 1 to 65535"}},
		{"json", `{"feature": {"network": {"incoming": {"port_mapping": [[80]]}}}}`, []string{"port_mapping[0]", "[LOCAL, REMOTE]"}},
		{"json", `{"feature": {"network": {"incoming": {"ports": ["80"]}}}}`, []string{"ports[0]", `expected a number, got a string ("80")`}},
		{"json", `{"feature": {"network": {"outgoing": {"filter": {"local": ["a"], "remote": ["b"]}}}}}`, []string{"outgoing.filter", "exactly one of local"}},
		{"json", `{"feature": {"env": {"include": "A", "exclude": "B"}}}`, []string{"feature.env", "exclusive"}},
		{"json", `{"feature": {"copy_target": true}}`, []string{"feature.copy_target", "not supported"}},
		{"json", `{"feature": {"network": {"dns": {"filter": {"local": ["a"], "remote": ["b"]}}}}}`, []string{"feature.network.dns.filter", "exactly one of local"}},
		{"json", `{"target": "deploy/api/bad"}`, []string{"target", "KIND/NAME"}},
		{"json", `{"target": {"labels": {"app": "a b"}}}`, []string{"target.labels.app", "not a label value"}},
		{"json", `{"target": {"labels": {}}}`, []string{"target.labels", "expected a table of labels"}},
		{"json", `{"target": {"labels": {"app": "api"}, "pod": "x"}}`, []string{"give only labels and container"}},
		{"json", `{"agent": {"ttl": 70000}}`, []string{"agent.ttl", "out of range: use 0 to 65535"}},
		{"json", `{"agent": {"startup_timeout": -1}}`, []string{"agent.startup_timeout", "out of range"}},
		{"json", `{"feature": {"fs": {"mode": "readwrite"}}}`, []string{"feature.fs.mode", "local, localwithoverrides, read, write"}},
		{"json", `{"feature": {"env": {"override": {"A": 1}}}}`, []string{"feature.env.override.A", "expected a string"}},
		{"json", `{"target": "deploy/api"} {}`, []string{"more than one value"}},
		{"json", `{"target": `, []string{"not valid JSON"}},
		{"yaml", "target: a\ntarget: b\n", []string{"not valid YAML"}},
		{"toml", "target = \n", []string{"not valid TOML", "line 1"}},
		{"ini", "", []string{"name the file .json, .yaml, .yml or .toml"}},
		{"json", `[1, 2]`, []string{"expected a table of keys"}},
	} {
		_, err := Parse([]byte(tc.text), tc.format)
		if err == nil {
			t.Errorf("%s %q: no error", tc.format, tc.text)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s %q: error %q does not say %q", tc.format, tc.text, err, w)
			}
		}
	}
}

func TestFormat(t *testing.T) {
	for path, want := range map[string]string{"a.json": "json", ".mirrord/mirrord.YAML": "yaml", "x.yml": "yaml", "c.toml": "toml", "noext": ""} {
		if got := Format(path); got != want {
			t.Errorf("Format(%q) = %q, want %q", path, got, want)
		}
	}
}

// FuzzParse: no input makes the parser panic, and whatever parses names a valid target.
func FuzzParse(f *testing.F) {
	for format, text := range full {
		f.Add([]byte(text), format)
	}
	f.Add([]byte(`{"feature": {"network": {"incoming": {"port_mapping": [[1, 2]]}}}}`), "json")
	f.Add([]byte("feature:\n  fs: write\n"), "yaml")
	f.Fuzz(func(t *testing.T, b []byte, format string) {
		c, err := Parse(b, format)
		if err != nil {
			if c != nil {
				t.Fatal("a file and an error")
			}
			return
		}
		for _, m := range c.Features.Network.Incoming.PortMapping {
			if m.Remote < 1 || m.Remote > 65535 || m.Local < 1 || m.Local > 65535 {
				t.Fatalf("port mapping %v out of range", m)
			}
		}
	})
}

func TestKey(t *testing.T) {
	for path, want := range map[string]string{
		"feature.fs.readOnly[2]":                                 "feature.fs.read_only[2]",
		"feature.network.incoming.portMapping[0].local":          "feature.network.incoming.port_mapping[0]",
		"feature.network.incoming.httpFilter.header":             "feature.network.incoming.http_filter.header_filter",
		"feature.env.exclude":                                    "feature.env.exclude",
		"feature.network.incoming.httpFilter.requiredHeaders[1]": "feature.network.incoming.httpFilter.requiredHeaders[1]",
	} {
		if got := Key(path); got != want {
			t.Errorf("Key(%q) = %q, want %q", path, got, want)
		}
	}
}
