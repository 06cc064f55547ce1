package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// corpus is what the loader must do with each config of testdata/corpus: configs written
// here in the shapes mirrord users write (their docs' forms, targets, filters, templates,
// the keys people copy from one project to the next), in JSON, YAML and TOML. Accepted ones
// list the keys a warning names (ignored, with why); refused ones the key the error names
// and a word of its reason. (Real users' files from public repositories were checked the
// same way by hand; they are not kept here: see README, "mirrord compatibility".)
var corpus = map[string]struct {
	warn           []string // keys of the warnings, in order
	errKey, errMsg string   // a refused file
}{
	"agent-tuning.json":          {warn: []string{"operator", "agent.image", "agent.log_level", "agent.namespace", "agent.tolerations"}},
	"any-of-mixed.yaml":          {},
	"body-filter-all-of.json":    {},
	"copy-target.json":           {errKey: "feature.copy_target", errMsg: "not supported"},
	"cronjob-target.toml":        {},
	"db-branches.json":           {warn: []string{"feature.db_branches[0].ttl_secs"}}, // above the 15-minute cap
	"env-include-exclude.json":   {errKey: "feature.env", errMsg: "exclusive"},        // mirrord refuses it too
	"env-mapping-unset.json":     {warn: []string{"feature.env.load_from_process"}},
	"env-override.yaml":          {},
	"experimental.yaml":          {warn: []string{"experimental", "feature.hostname", "feature.network.ipv6", "feature.network.incoming.listen_ports"}},
	"filter-without-steal.json":  {}, // the filter waits for a --steal (sessionflags ignores it otherwise)
	"fs-mapping.json":            {},
	"fs-overrides.toml":          {},
	"labels-target.json":         {},
	"network-off.json":           {},
	"old-header-filter.json":     {},
	"port-mapping.json":          {},
	"proxies.json":               {warn: []string{"accept_invalid_certificates", "external_proxy", "internal_proxy"}},
	"rollout-target.json":        {},
	"service-target.yaml":        {},
	"skip-processes.json":        {warn: []string{"sip_binaries", "skip_build_tools", "skip_processes"}},
	"split-queues.json":          {warn: []string{"operator"}},
	"steal-baggage-session.json": {},
	"steal-not-probes.json":      {},
	"targetless-outgoing.json":   {},
	"template-target.json":       {},
}

func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/corpus/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 || len(files) != len(corpus) {
		t.Fatalf("%d files in testdata/corpus, %d expected outcomes: give each file one", len(files), len(corpus))
	}
	vars := TemplateVars{Key: "k", GitBranch: "main", Getenv: func(string) (string, bool) { return "", false }}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			want, ok := corpus[name]
			if !ok {
				t.Fatalf("no expected outcome for %s", name)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			text, err := Render(b, vars)
			var f *File
			if err == nil {
				f, err = Parse(text, strings.TrimPrefix(filepath.Ext(name), "."))
			}
			if want.errKey != "" {
				var ce *Error
				if !errors.As(err, &ce) || ce.Key != want.errKey || !strings.Contains(ce.Msg, want.errMsg) {
					t.Fatalf("err = %v, want %s: ...%s...", err, want.errKey, want.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var warned []string
			for _, w := range f.Warnings {
				k, _, ignored := strings.Cut(w, " ignored: ")
				if !ignored {
					k, _, _ = strings.Cut(w, ": ") // a value changed: "KEY: why"
				}
				warned = append(warned, k)
			}
			if !slices.Equal(warned, want.warn) {
				t.Errorf("warnings %q, want ones on %q", f.Warnings, want.warn)
			}
		})
	}
}
