package local

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestSessionEnv(t *testing.T) {
	remote := map[string]string{"DB_TIMEOUT": "5", "HTTP_TIMEOUT": "7", "REGION": "eu", "LOG_LEVEL": "info"}
	for name, tc := range map[string]struct {
		f    mirrordv1alpha1.EnvFeature
		file map[string]string
		want map[string]string
	}{
		"the target's alone": {want: remote},
		"an env file adds and replaces": {file: map[string]string{"REGION": "us", "FROM_FILE": "1"},
			want: map[string]string{"DB_TIMEOUT": "5", "HTTP_TIMEOUT": "7", "REGION": "us", "LOG_LEVEL": "info", "FROM_FILE": "1"}},
		"override wins over the file": {f: mirrordv1alpha1.EnvFeature{Override: map[string]string{"REGION": "ap"}}, file: map[string]string{"REGION": "us"},
			// The agent applied the override; the remote map the CLI gets holds it already.
			want: map[string]string{"DB_TIMEOUT": "5", "HTTP_TIMEOUT": "7", "REGION": "eu", "LOG_LEVEL": "info"}},
		"mapping replaces matching names, file's too": {f: mirrordv1alpha1.EnvFeature{Mapping: map[string]string{".+_TIMEOUT": "1000"}}, file: map[string]string{"X_TIMEOUT": "1"},
			want: map[string]string{"DB_TIMEOUT": "1000", "HTTP_TIMEOUT": "1000", "X_TIMEOUT": "1000", "REGION": "eu", "LOG_LEVEL": "info"}},
		"the first pattern in sorted order wins": {f: mirrordv1alpha1.EnvFeature{Mapping: map[string]string{"^DB_": "a", ".+_TIMEOUT": "b"}},
			want: map[string]string{"DB_TIMEOUT": "b", "HTTP_TIMEOUT": "b", "REGION": "eu", "LOG_LEVEL": "info"}},
		"mapping leaves overridden variables alone": {f: mirrordv1alpha1.EnvFeature{Mapping: map[string]string{"LOG_.*": "debug", "REGION": "x"}, Override: map[string]string{"REGION": "eu"}},
			want: map[string]string{"DB_TIMEOUT": "5", "HTTP_TIMEOUT": "7", "REGION": "eu", "LOG_LEVEL": "debug"}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := sessionEnv(remote, tc.f, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestUnsetEnv(t *testing.T) {
	got := unsetEnv([]string{"AWS_PROFILE=dev", "Aws_Profile=x", "PATH=/bin", "KEEP=1"}, []string{"aws_profile", "nothing"})
	if d := cmp.Diff([]string{"PATH=/bin", "KEEP=1"}, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
