package ls

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestKinds(t *testing.T) {
	for name, tc := range map[string]struct {
		types   []string
		env     string
		want    []mirrordv1alpha1.TargetKind
		wantErr string
	}{
		"none":                 {},
		"mirrord's names":      {types: []string{"deployment", "pod"}, want: []mirrordv1alpha1.TargetKind{"Deployment", "Pod"}},
		"kubectl's, commas":    {types: []string{"deploy,sts", "po", "deploy"}, want: []mirrordv1alpha1.TargetKind{"Deployment", "StatefulSet", "Pod"}},
		"the IDE's env":        {env: `["rollout","pod"]`, want: []mirrordv1alpha1.TargetKind{"Rollout", "Pod"}},
		"flags win over env":   {types: []string{"job"}, env: `["pod"]`, want: []mirrordv1alpha1.TargetKind{"Job"}},
		"unknown":              {types: []string{"lambda"}, wantErr: `target type "lambda": use one of deployment`},
		"labels are no object": {types: []string{"labels"}, wantErr: "use one of"},
		"bad env":              {env: "pod", wantErr: "MIRRORD_LS_TARGET_TYPES: want a JSON list"},
	} {
		got, err := Kinds(tc.types, tc.env)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %v, want %q", name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v %v, want %v", name, got, err, tc.want)
		}
	}
}

func TestPrint(t *testing.T) {
	st := mirrordv1alpha1.MirrordTargetQueryStatus{Phase: mirrordv1alpha1.TargetQueryComplete, Targets: []mirrordv1alpha1.FoundTarget{
		{Path: "deployment/api", Clusters: []string{"c2", "c3"}},
		{Path: "pod/api-1/container/app", Clusters: []string{"c2"}},
	}}
	for name, tc := range map[string]struct {
		output     string
		namespaces []string
		want       string
	}{
		"table":          {want: "TARGET                    CLUSTERS\ndeployment/api            c2,c3\npod/api-1/container/app   c2\n"},
		"mirrord's json": {output: "json", want: `["deployment/api","pod/api-1/container/app"]` + "\n"},
		"mirrord's rich json": {output: "json", namespaces: []string{"default", "shop"},
			want: `{"targets":[{"path":"deployment/api","available":true},{"path":"pod/api-1/container/app","available":true}],"current_namespace":"shop","namespaces":["default","shop"]}` + "\n"},
		"name": {output: "name", want: "deployment/api\npod/api-1/container/app\n"},
		"yaml": {output: "yaml", want: "clusters:\n  - c2\n  - c3\n  path: deployment/api\n"},
	} {
		var b bytes.Buffer
		if err := Print(&b, tc.output, "shop", tc.namespaces, st); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("%s:\n%s\nwant\n%s", name, b.String(), tc.want)
		}
	}
	var b bytes.Buffer
	_ = Print(&b, "json", "shop", nil, mirrordv1alpha1.MirrordTargetQueryStatus{})
	if b.String() != "[]\n" {
		t.Errorf("no targets as json: %q, want [] (mirrord's IDE extensions read a list)", b.String())
	}
	b.Reset()
	_ = Print(&b, "", "shop", nil, mirrordv1alpha1.MirrordTargetQueryStatus{})
	if !strings.Contains(b.String(), "No targets you may run sessions on in namespace shop") {
		t.Errorf("no targets as a table: %q", b.String())
	}
}
