package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Templates as mirrord users write them (Tera's spellings), rendered before parsing.
func TestRender(t *testing.T) {
	env := map[string]string{"TARGET": "deploy/payments", "NS": "shop"}
	vars := TemplateVars{Key: "k-123", GitBranch: "feature/x", Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	for _, tc := range []struct {
		name, in, want, wantErr string
		vars                    *TemplateVars
	}{
		{name: "no template", in: `{"target": {"path": "deploy/api"}}`, want: `{"target": {"path": "deploy/api"}}`},
		{name: "get_env", in: `{"target": "{{ get_env(name="TARGET") }}"}`, want: `{"target": "deploy/payments"}`},
		{name: "get_env default, unset", in: `{"target": "{{ get_env(name="UNSET", default="deploy/api") }}"}`, want: `{"target": "deploy/api"}`},
		{name: "get_env default, set", in: `{"target": {"namespace": "{{ get_env(name="NS", default="dev") }}"}}`, want: `{"target": {"namespace": "shop"}}`},
		{name: "get_env unset without default", in: `{"target": "{{ get_env(name="UNSET") }}"}`, wantErr: "environment variable UNSET is not set"},
		{name: "the session key", in: `{"feature": {"network": {"incoming": {"http_filter": {"header_filter": "x-mirrord-user: {{ key }}"}}}}}`,
			want: `{"feature": {"network": {"incoming": {"http_filter": {"header_filter": "x-mirrord-user: k-123"}}}}}`},
		{name: "git branch", in: `header_filter: "x-branch: {{ git_branch | default(value='main') }}"`, want: `header_filter: "x-branch: feature/x"`},
		{name: "git branch unknown", in: `header_filter: "x-branch: {{ git_branch | default(value='main') }}"`, want: `header_filter: "x-branch: main"`,
			vars: &TemplateVars{Key: "k"}},
		{name: "a condition", in: "{% if get_env(name=\"NS\") == \"shop\" %}target = \"deploy/shop-api\"{% else %}target = \"deploy/api\"{% endif %}\n",
			want: "target = \"deploy/shop-api\"\n"},
		{name: "an unknown variable", in: `{"target": "{{ nope }}"}`, wantErr: "nope"},
		{name: "bad syntax", in: `{"target": "{{ get_env(name= }}"}`, wantErr: "template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := vars
			if tc.vars != nil {
				v = *tc.vars
				v.Getenv = vars.Getenv
			}
			got, err := Render([]byte(tc.in), v)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q (rendered %q)", err, tc.wantErr, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("rendered %q, want %q", got, tc.want)
			}
		})
	}
}

// Load renders a file before parsing it, and names the file in a template's error.
func TestLoadRendersTemplates(t *testing.T) {
	t.Setenv("MIRRORD_TEST_TARGET", "deploy/from-env")
	dir := t.TempDir()
	good := filepath.Join(dir, "mirrord.json")
	if err := os.WriteFile(good, []byte(`{"target": "{{ get_env(name="MIRRORD_TEST_TARGET", default="deploy/api") }}"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(good)
	if err != nil || f.Target == nil || *f.Target != "deploy/from-env" {
		t.Fatalf("Load: %+v, %v", f, err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"target": "{{ get_env(name="MIRRORD_TEST_UNSET") }}"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "config file "+bad) || !strings.Contains(err.Error(), "MIRRORD_TEST_UNSET") {
		t.Errorf("Load of a failing template: %v", err)
	}
}
