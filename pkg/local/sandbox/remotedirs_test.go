//go:build linux

package sandbox

import (
	"strings"
	"testing"
)

// TestKeptLocal: a target's volume covers none of the machine's own programs, libraries,
// the user's home or the command's PATH, at, in or above them.
func TestKeptLocal(t *testing.T) {
	protected := protectedDirs([]string{"./bin/app"}, []string{"HOME=/home/dev", "PATH=/home/dev/go/bin:/opt/tools/bin"})
	for dir, kept := range map[string]bool{
		"/etc/app":                        false, // a ConfigMap
		"/var/run/secrets/kubernetes.io/": false,
		"/data":                           false,
		"/etc":                            true,
		"/":                               true,
		"/usr/bin":                        true,
		"/usr/local/lib/python3":          true,
		"/lib/x86_64-linux-gnu":           true,
		"/home/dev":                       true,
		"/home/dev/.aws":                  true,
		"/home":                           true,
		"/opt/tools":                      true, // above a PATH entry
		"/opt/tools/bin":                  true,
		"/opt/other":                      false,
	} {
		why := keptLocalReason(dir, protected)
		if (why != "") != kept {
			t.Errorf("%s: %q, want kept local = %v", dir, why, kept)
		}
		if kept && !strings.HasPrefix(why, "kept local") {
			t.Errorf("%s: %q", dir, why)
		}
	}
}

// TestMappedReason: a feature.fs.mapping mount may be inside the user's home (its other
// files stay visible), but not at or above it, nor where a volume may not be for programs.
func TestMappedReason(t *testing.T) {
	env := []string{"HOME=/home/dev", "PATH=/home/dev/go/bin:/opt/tools/bin"}
	programs, homes := programDirs([]string{"./bin/app"}, env), homeDirs(env)
	for dir, kept := range map[string]bool{
		"/home/dev/project/config": false,
		"/opt/tomcat":              false,
		"/srv":                     false,
		"/home/dev":                true,
		"/home":                    true,
		"/":                        true,
		"/etc":                     true,
		"/home/dev/go":             true, // above a PATH entry
		"/usr/local/tomcat":        true,
		"/opt/tools/bin/x":         true,
	} {
		why := mappedReason(dir, programs, homes)
		if (why != "") != kept {
			t.Errorf("%s: %q, want kept local = %v", dir, why, kept)
		}
	}
}
