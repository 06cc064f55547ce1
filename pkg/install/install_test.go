package install

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/controller/roles"
)

func objects(t *testing.T, y []byte) []*unstructured.Unstructured {
	t.Helper()
	out, err := Objects(y)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name || strings.HasPrefix(o.GetName(), name+"-")) {
			return o
		}
	}
	return nil
}

// rolesOf loads the rendered mirrord-roles ConfigMap the way the controller does.
func rolesOf(t *testing.T, objs []*unstructured.Unstructured) (roles.Roles, error) {
	cm := find(objs, "ConfigMap", "mirrord-roles")
	if cm == nil {
		t.Fatal("no mirrord-roles ConfigMap")
	}
	dir := t.TempDir()
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return roles.Load(dir)
}

var clusterScoped = map[string]bool{
	"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
}

func TestOverlays(t *testing.T) {
	cases := map[string]struct {
		want                                                   roles.Roles
		primaryObjects, memberObjects, defaultObjects, isValid bool
	}{
		"single-cluster":          {want: roles.Roles{ClusterName: "local", Primary: true, Workload: true, Default: true}, primaryObjects: true, memberObjects: true, defaultObjects: true},
		"primary":                 {want: roles.Roles{ClusterName: "local", Primary: true, Workload: true}, primaryObjects: true, memberObjects: true},
		"primary-management-only": {want: roles.Roles{ClusterName: "local", Primary: true, ManagementOnly: true}, primaryObjects: true},
		"workload":                {want: roles.Roles{ClusterName: "local", Workload: true}, memberObjects: true},
		"workload-default":        {want: roles.Roles{ClusterName: "local", Workload: true, Default: true}, memberObjects: true, defaultObjects: true},
	}
	if len(cases) != len(Overlays) {
		t.Fatalf("every overlay needs a case: %v", Overlays)
	}
	for overlay, tc := range cases {
		t.Run(overlay, func(t *testing.T) {
			y, err := Render(overlay, Options{})
			if err != nil {
				t.Fatal(err)
			}
			objs := objects(t, y)
			got, err := rolesOf(t, objs)
			if err != nil {
				t.Fatalf("the rendered roles do not load: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("roles (-want,+got):\n%s", diff)
			}
			crds := 0
			for _, o := range objs {
				if o.GetKind() == "CustomResourceDefinition" {
					crds++
					continue
				}
				if ns := o.GetNamespace(); ns != "mirrord-system" && !clusterScoped[o.GetKind()] {
					t.Errorf("%s %s is in namespace %q, want mirrord-system", o.GetKind(), o.GetName(), ns)
				}
			}
			if crds != 10 { // sessions, cluster sessions, clusters, policies and profiles (two each), target queries, DB branches, queue registries
				t.Errorf("%d CRDs, want 10", crds)
			}
			dep := find(objs, "Deployment", "mirrord-controller")
			if dep == nil {
				t.Fatal("no controller Deployment")
			}
			cs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
			if img := cs[0].(map[string]any)["image"]; img != ImageName+":v0.1.0" {
				t.Errorf("controller image = %v", img)
			}
			for _, o := range []struct {
				kind, name string
				want       bool
			}{
				{"ValidatingAdmissionPolicy", "kubectl-mirrord-session-owner", tc.primaryObjects},
				{"ValidatingAdmissionPolicy", "kubectl-mirrord-targetquery-owner", tc.primaryObjects},
				{"ClusterRole", "mirrord-user", tc.primaryObjects},
				{"ClusterRole", "mirrord-controller-primary", tc.primaryObjects},
				{"ServiceAccount", "mirrord-primary", tc.memberObjects},
				{"ClusterRole", "mirrord-controller-workload", tc.memberObjects},
				{"ClusterRole", "mirrord-controller-default", tc.defaultObjects},
			} {
				if got := find(objs, o.kind, o.name) != nil; got != o.want {
					t.Errorf("%s %s present = %v, want %v", o.kind, o.name, got, o.want)
				}
			}
		})
	}
}

func TestRenderOptions(t *testing.T) {
	y, err := Render("workload", Options{Image: "registry.example:5000/team/kubectl-mirrord:v1.2", ClusterName: "eu-1",
		ControllerArgs: []string{"--agent-max-procs=2", "--excluded-namespaces=a,b"}})
	if err != nil {
		t.Fatal(err)
	}
	objs := objects(t, y)
	r, err := rolesOf(t, objs)
	if err != nil || r.ClusterName != "eu-1" || !r.Workload {
		t.Fatalf("roles = %+v, %v", r, err)
	}
	if !strings.Contains(string(y), "image: registry.example:5000/team/kubectl-mirrord:v1.2") {
		t.Errorf("image not replaced:\n%s", y)
	}
	dep := find(objs, "Deployment", "mirrord-controller")
	cs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
	if n := len(args); n < 3 || args[n-2] != "--agent-max-procs=2" || args[n-1] != "--excluded-namespaces=a,b" {
		t.Errorf("controller args = %q, want the flags appended", args)
	}

	y, err = Render("workload", Options{Image: "registry.example/kubectl-mirrord@sha256:" + strings.Repeat("ab", 32)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "image: registry.example/kubectl-mirrord@sha256:abab") {
		t.Errorf("image not pinned by digest:\n%s", y)
	}
	for _, tc := range []struct {
		overlay string
		o       Options
		want    string
	}{
		{"nope", Options{}, "choose one of single-cluster, primary"},
		{"workload", Options{Image: "a/b@sha256:12"}, "64 hex digits"},
		{"workload", Options{Image: "a b"}, "write REGISTRY/REPOSITORY:TAG"},
		{"workload", Options{ControllerArgs: []string{"agent-max-procs=2"}}, "give each as --name=value"},
	} {
		if _, err := Render(tc.overlay, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Render(%s, %+v): %v, want %q", tc.overlay, tc.o, err, tc.want)
		}
	}
}

func TestSplitImage(t *testing.T) {
	for in, want := range map[string][3]string{
		"a/b:v1":                     {"a/b", "v1", ""},
		"host:5000/b":                {"host:5000/b", "latest", ""},
		"host:5000/b:dev":            {"host:5000/b", "dev", ""},
		"kubectl-mirrord":            {"kubectl-mirrord", "latest", ""},
		"h:5000/b@sha256:" + hex64(): {"h:5000/b", "", "sha256:" + hex64()},
	} {
		n, tag, digest, err := splitImage(in)
		if err != nil || n != want[0] || tag != want[1] || digest != want[2] {
			t.Errorf("splitImage(%q) = %q, %q, %q, %v; want %q", in, n, tag, digest, err, want)
		}
	}
}

func hex64() string { return strings.Repeat("0f", 32) }

// TestAllObjects: an uninstall looks for every role's objects, each once.
func TestAllObjects(t *testing.T) {
	all, err := AllObjects()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, o := range all {
		if seen[Key(o)] {
			t.Errorf("%s twice", Key(o))
		}
		seen[Key(o)] = true
	}
	for _, k := range []string{
		"apiextensions.k8s.io/CustomResourceDefinition mirrordsessions.kubectl-mirrord.io",
		"Namespace mirrord-system",
		"rbac.authorization.k8s.io/ClusterRole mirrord-user",
		"rbac.authorization.k8s.io/ClusterRole mirrord-controller-workload",
		"apps/Deployment mirrord-system/mirrord-controller",
	} {
		if !seen[k] {
			t.Errorf("no %s among %d objects", k, len(all))
		}
	}
}
