package roles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func member(name string, workload, def bool) *mirrordv1alpha1.MirrordCluster {
	return &mirrordv1alpha1.MirrordCluster{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: mirrordv1alpha1.MirrordClusterSpec{Workload: workload, Default: def}}
}

func TestValidateTopology(t *testing.T) {
	single := Roles{ClusterName: "c1", Primary: true, Workload: true, Default: true}
	primaryWorkload := Roles{ClusterName: "c1", Primary: true, Workload: true}
	mgmt := Roles{ClusterName: "c1", Primary: true, ManagementOnly: true}
	cases := map[string]struct {
		self    Roles
		members []*mirrordv1alpha1.MirrordCluster
		wantErr string
	}{
		"topology A":                 {self: single, members: []*mirrordv1alpha1.MirrordCluster{member("c2", true, false), member("c3", true, false)}},
		"topology B":                 {self: mgmt, members: []*mirrordv1alpha1.MirrordCluster{member("c2", true, true), member("c3", true, false)}},
		"single cluster":             {self: single},
		"no default":                 {self: primaryWorkload, members: []*mirrordv1alpha1.MirrordCluster{member("c2", true, false)}, wantErr: "no Default cluster: set spec.default"},
		"no default, mgmt":           {self: mgmt, members: []*mirrordv1alpha1.MirrordCluster{member("c2", true, false)}, wantErr: "this Primary is managementOnly"},
		"two defaults":               {self: single, members: []*mirrordv1alpha1.MirrordCluster{member("c2", true, true)}, wantErr: "2 Default clusters (c1 (this Primary), c2)"},
		"default not workload":       {self: mgmt, members: []*mirrordv1alpha1.MirrordCluster{member("c2", false, true)}, wantErr: "MirrordCluster c2 is Default but not a Workload"},
		"mgmt marked workload":       {self: Roles{ClusterName: "c1", Primary: true, ManagementOnly: true, Workload: true}, wantErr: "managementOnly Primary runs no workloads but this one is also Workload"},
		"mgmt marked default":        {self: Roles{ClusterName: "c1", Primary: true, ManagementOnly: true, Default: true, Workload: true}, wantErr: "also Workload+Default"},
		"local default not workload": {self: Roles{ClusterName: "c1", Primary: true, Default: true}, wantErr: "Default but not a Workload"},
		"member named like primary":  {self: mgmt, members: []*mirrordv1alpha1.MirrordCluster{member("c1", true, true)}, wantErr: "Primary's own clusterName"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := ValidateTopology(tc.self, tc.members)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(k, v string) {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "no role") {
		t.Fatalf("empty config: err = %v, want 'no role'", err)
	}
	write(KeyWorkload, "true\n")
	write(KeyDefault, "true")
	write(KeyClusterName, "eu-1")
	r, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r != (Roles{ClusterName: "eu-1", Workload: true, Default: true}) || r.String() != "Workload+Default" {
		t.Fatalf("Load = %+v (%s)", r, r)
	}
	write(KeyPrimary, "yes please")
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "primary=\"yes please\" ") {
		t.Fatalf("bad bool: err = %v", err)
	}
	write(KeyPrimary, "true")
	write(KeyClusterName, "EU_1")
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a valid name") {
		t.Fatalf("bad name: err = %v", err)
	}
}
