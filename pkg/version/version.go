// Package version reports the build of kubectl-mirrord. The Makefile sets the variables
// with -ldflags -X; a plain `go build` reports "dev".
package version

import (
	"regexp"
	"runtime"
	"runtime/debug"
)

var (
	// Version is the release, e.g. v0.1.0.
	Version = "dev"
	// Commit is the git commit the binary was built from.
	Commit = ""
	// ImageRepository is where this build's controller and agent image is published;
	// `kubectl mirrord install` installs ImageRepository:Version.
	ImageRepository = "ghcr.io/kubectl-mirrord/kubectl-mirrord"
)

// Info describes a build.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the running binary's build description.
func Get() Info {
	commit := Commit
	if commit == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					commit = s.Value
				}
			}
		}
	}
	return Info{
		Version:   Version,
		Commit:    commit,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
}

// releaseTag is how a release is tagged: v1.2.3, v1.2.3-rc.1.
var releaseTag = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`)

// IsReleaseTag reports whether v is shaped like a release's tag (`make release` and the
// image `kubectl mirrord install` pins both need one).
func IsReleaseTag(v string) bool { return releaseTag.MatchString(v) }
