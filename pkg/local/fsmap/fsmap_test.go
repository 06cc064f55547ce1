package fsmap

import (
	"slices"
	"strings"
	"testing"
)

func TestMap(t *testing.T) {
	// mirrord's own examples (config docs and its layer's tests), anchored as this tool needs.
	m, err := New(map[string]string{
		"^/srv/a/b/c":                                    "/inside/srv", // its directory is inside /srv's: one mount serves both
		"^/home/me/dev/tomcat":                           "/etc/tomcat",
		"^/home/me/dev/config/(?<app>[^/]+)":             "/mnt/configs/me-$app",
		"^/work/(baz)":                                   "/tmp/mirrord-$1",
		"^/srv/(?<app>[^/]+)/config/(?<file>.+)":         "/etc/${app}/$file",
		`^/Users/(?<user>[^/]+)/cache/.+/manifest\.xml$`: "/opt/tomcat/static/manifest.xml",
		"^/exact/only$":                                  "/remote/exact",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in, want string
		mapped   bool
	}{
		{"/home/me/dev/tomcat/context.xml", "/etc/tomcat/context.xml", true},
		{"/home/me/dev/tomcat", "/etc/tomcat", true},
		{"/home/me/dev/tomcat-old/x", "/etc/tomcat-old/x", true}, // Regex::replace, unanchored end
		{"/home/me/dev/config/api/app.conf", "/mnt/configs/me-api/app.conf", true},
		{"/home/me/dev/other", "", false},
		{"/work/baz/test", "/tmp/mirrord-baz/test", true},
		{"/work/bar/test", "", false},
		{"/srv/shop/config/a/b.yaml", "/etc/shop/a/b.yaml", true},
		{"/Users/jo/cache/x/y/manifest.xml", "/opt/tomcat/static/manifest.xml", true},
		{"/Users/jo/cache/x/y/index.html", "", false},
		{"/exact/only", "/remote/exact", true},
		{"/exact/only/below", "", false},
		{"relative/home/me/dev/tomcat", "", false},
		{"/HOME/me/dev/tomcat", "", false}, // mirrord's replace is case-sensitive too
	} {
		got, ok := m.Map(tc.in)
		if got != tc.want || ok != tc.mapped {
			t.Errorf("Map(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.mapped)
		}
	}
	want := []string{"/Users", "/exact/only", "/home/me/dev/config", "/home/me/dev/tomcat", "/srv", "/work"}
	if got := m.Dirs(); !slices.Equal(got, want) {
		t.Errorf("Dirs() = %v, want %v", got, want)
	}
}

func TestMountDir(t *testing.T) {
	for _, tc := range []struct{ pattern, dir, err string }{
		{"^/a/b", "/a/b", ""},
		{"^/a/b$", "/a/b", ""},
		{"^/a/b/", "/a/b", ""},
		{"^/a/b/(.*)", "/a/b", ""},
		{"^/a/bc(/.*)?$", "/a", ""},
		{`^/a\.b/c.+`, "/a.b", ""},
		{"^/home/(?<user>[^/]+)/dev", "/home", ""}, // the sandbox refuses it: /home holds the user's home
		{"^/(?<top>[^/]+)/dev", "", "no directory below /"},
		{"/foo", "", "start the pattern with ^"},
		{"(?i)^/a/b", "", "drop (?i)"},
		{"^(?i)/a/b", "", "drop (?i)"},
		{"^a/b", "", "absolute directory after ^"},
		{"^/", "", "no directory below /"},
	} {
		dir, err := MountDir(tc.pattern)
		if dir != tc.dir || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("MountDir(%q) = %q, %v; want %q, ...%s...", tc.pattern, dir, err, tc.dir, tc.err)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		patterns map[string]string
		err      string
	}{
		{map[string]string{"^/a/(": "/b"}, `"^/a/(": not a valid regular expression`},
		{map[string]string{"^/a/b": "b"}, "not an absolute path of the target"},
		{map[string]string{"/a/b": "/b"}, "start the pattern with ^"},
	} {
		_, err := New(tc.patterns)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("New(%v) = %v, want ...%s...", tc.patterns, err, tc.err)
		}
	}
	many := map[string]string{}
	for i := range MaxRules + 1 {
		many["^/a/"+strings.Repeat("x", i+1)] = "/b"
	}
	if _, err := New(many); err == nil {
		t.Errorf("%d mappings accepted", len(many))
	}
}
