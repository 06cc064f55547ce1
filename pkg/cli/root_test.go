package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	root := NewRootCmd(streams)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestCommandTree(t *testing.T) {
	root := NewRootCmd(genericiooptions.NewTestIOStreamsDiscard())
	root.InitDefaultCompletionCmd()
	visible, hidden := map[string]bool{}, map[string]bool{}
	for _, c := range root.Commands() {
		if c.Hidden {
			hidden[c.Name()] = true
		} else {
			visible[c.Name()] = true
		}
	}
	for _, name := range []string{"exec", "sessions", "status", "version", "completion", "install", "uninstall", "options"} {
		if !visible[name] {
			t.Errorf("command %q is not visible; visible: %v", name, visible)
		}
	}
	for _, name := range []string{"controller", "agent"} {
		if !hidden[name] {
			t.Errorf("command %q is not hidden; hidden: %v", name, hidden)
		}
	}
	for _, flag := range []string{"kubeconfig", "context", "namespace", "cluster", "user", "v"} {
		if root.PersistentFlags().Lookup(flag) == nil {
			t.Errorf("kubeconfig flag --%s missing", flag)
		}
	}
}

func TestUsageReadsKubectlMirrord(t *testing.T) {
	out, err := run(t, "exec", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "kubectl mirrord exec --target TARGET") {
		t.Errorf("exec usage does not read `kubectl mirrord exec ...`:\n%s", out)
	}
}

func TestErrors(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"exec without command":       {args: []string{"exec", "-t", "deploy/api"}, want: "no command given"},
		"mirrord's flag names parse": {args: []string{"exec", "--no-remote-dns", "--no-tcp-outgoing", "--target-namespace", "x", "--agent-ttl", "60", "-t", "deploy/api", "--steal", "--http-path-filter", "(", "--", "ls"}, want: "--http-path-filter \"(\": not a valid regular expression"},
		"exec bad regex":             {args: []string{"exec", "-t", "deploy/api", "--steal", "--http-path-filter", "(", "--", "ls"}, want: "--http-path-filter \"(\": not a valid regular expression"},
		"exec bad target":            {args: []string{"exec", "-t", "route/x", "--", "ls"}, want: "--target"},
		"exec bad local port":        {args: []string{"exec", "-t", "deploy/api", "--local-port", "70000", "--", "ls"}, want: "--local-port 70000"},
		"exec missing config file":   {args: []string{"exec", "-f", "/nonexistent/mirrord.json", "--", "ls"}, want: "reading config file"},
		"kill without names":         {args: []string{"sessions", "kill"}, want: "say which sessions to end"},
		"status bad output format":   {args: []string{"status", "-o", "table"}, want: `--output "table": use json or yaml`},
		"controller without roles":   {args: []string{"controller", "--roles-dir", "/nonexistent"}, want: "this installation has no role"},
		"version bad output format":  {args: []string{"version", "-o", "table"}, want: `unknown output format "table"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := run(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestVersionJSON(t *testing.T) {
	out, err := run(t, "version", "--client", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Version, GoVersion, Platform string }
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("version -o json printed %q: %v", out, err)
	}
	if info.Version == "" || !strings.HasPrefix(info.GoVersion, "go") || !strings.Contains(info.Platform, "/") {
		t.Errorf("version info incomplete: %+v", info)
	}
}

// TestKubectlManners: the kubeconfig flags are listed by `options`, not on every help page,
// as kubectl does; enum flags complete their values.
func TestKubectlManners(t *testing.T) {
	help, err := run(t, "exec", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(help, "--kubeconfig") || !strings.Contains(help, `Use "kubectl mirrord options" for a list of global command-line options`) {
		t.Errorf("exec --help lists the global flags, or does not point at options:\n%s", help)
	}
	opts, err := run(t, "options")
	if err != nil || !strings.Contains(opts, "--kubeconfig") || !strings.Contains(opts, "-v, --v") {
		t.Errorf("options (%v):\n%s", err, opts)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"exec", "--incoming", ""}, []string{"mirror", "steal", "off"}},
		{[]string{"exec", "--fs-mode", ""}, []string{"read", "write", "local"}},
		{[]string{"install", "--role", "work"}, []string{"workload", "workload-default"}},
		{[]string{"sessions", "-o", "w"}, []string{"wide"}},
		{[]string{"version", "-o", ""}, []string{"json", "yaml"}},
	} {
		out, err := run(t, append([]string{"__complete"}, tc.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w+"\n") {
				t.Errorf("completing %q: %q lacks %q", tc.args, out, w)
			}
		}
	}
}
