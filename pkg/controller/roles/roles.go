// Package roles reads an installation's role configuration (written by the kustomize
// components into the mirrord-roles ConfigMap) and checks that a Primary and its member
// clusters form a valid topology.
package roles

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// Keys of the mirrord-roles ConfigMap, one file each when mounted.
const (
	KeyClusterName    = "clusterName"
	KeyPrimary        = "primary"
	KeyWorkload       = "workload"
	KeyDefault        = "default"
	KeyManagementOnly = "managementOnly"
)

// Roles is what this installation does.
type Roles struct {
	// ClusterName is how this cluster appears in session status when it is the Primary.
	ClusterName    string
	Primary        bool
	Workload       bool
	Default        bool
	ManagementOnly bool
}

// String lists the roles: "Primary+Workload+Default".
func (r Roles) String() string {
	var s []string
	if r.Primary {
		s = append(s, "Primary")
		if r.ManagementOnly {
			s[0] = "Primary(managementOnly)"
		}
	}
	if r.Workload {
		s = append(s, "Workload")
	}
	if r.Default {
		s = append(s, "Default")
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "+")
}

// Load reads the mounted ConfigMap directory. Missing keys are false (clusterName: "local").
func Load(dir string) (Roles, error) {
	r := Roles{ClusterName: "local"}
	read := func(key string) (string, bool, error) {
		b, err := os.ReadFile(filepath.Join(dir, key))
		if errors.Is(err, os.ErrNotExist) {
			return "", false, nil
		}
		if err != nil {
			return "", false, fmt.Errorf("reading role setting %s: %w", key, err)
		}
		return strings.TrimSpace(string(b)), true, nil
	}
	for key, dst := range map[string]*bool{KeyPrimary: &r.Primary, KeyWorkload: &r.Workload, KeyDefault: &r.Default, KeyManagementOnly: &r.ManagementOnly} {
		v, ok, err := read(key)
		if err != nil {
			return r, err
		}
		if !ok {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return r, fmt.Errorf("role setting %s=%q in %s is not true or false: fix the mirrord-roles ConfigMap (configMapGenerator literals in your overlay)", key, v, dir)
		}
		*dst = b
	}
	name, ok, err := read(KeyClusterName)
	if err != nil {
		return r, err
	}
	if ok && name != "" {
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			return r, fmt.Errorf("role setting clusterName=%q is not a valid name (%s): fix the mirrord-roles ConfigMap", name, strings.Join(errs, "; "))
		}
		r.ClusterName = name
	}
	return r, r.Validate()
}

// Validate checks what this installation can tell on its own.
func (r Roles) Validate() error {
	switch {
	case !r.Primary && !r.Workload && !r.Default:
		return errors.New("this installation has no role: use one of the overlays (single-cluster, primary, primary-management-only, workload, workload-default)")
	case r.ManagementOnly && !r.Primary:
		return errors.New("managementOnly is set but this cluster is not the Primary: managementOnly only applies to a Primary; use the workload overlay for a member")
	case r.ManagementOnly && (r.Workload || r.Default):
		return fmt.Errorf("a managementOnly Primary runs no workloads but this one is also %s: drop the workload/default components, or drop managementOnly", strings.TrimPrefix(r.String(), "Primary(managementOnly)+"))
	case r.Default && !r.Workload:
		return errors.New("this cluster is Default but not a Workload: stateful operations need the target's pods, so a Default cluster must also be a Workload (use the workload-default overlay)")
	}
	return nil
}

// ValidateTopology checks a Primary's own roles together with its member clusters: exactly one
// Default, and every Default is also a Workload.
func ValidateTopology(self Roles, members []*mirrordv1alpha1.MirrordCluster) error {
	if err := self.Validate(); err != nil {
		return err
	}
	var defaults []string
	if self.Default {
		defaults = append(defaults, self.ClusterName+" (this Primary)")
	}
	for _, m := range members {
		if m.Name == self.ClusterName {
			return fmt.Errorf("MirrordCluster %s has the Primary's own clusterName: rename the MirrordCluster or set clusterName in the Primary's mirrord-roles ConfigMap", m.Name)
		}
		if m.Spec.Default {
			if !m.Spec.Workload {
				return fmt.Errorf("MirrordCluster %s is Default but not a Workload: set spec.workload: true (a Default cluster must run the target's pods)", m.Name)
			}
			defaults = append(defaults, m.Name)
		}
	}
	sort.Strings(defaults)
	switch {
	case len(defaults) == 0 && self.ManagementOnly:
		return errors.New("no Default cluster: this Primary is managementOnly, so one member must be the Default: set spec.default: true on exactly one MirrordCluster")
	case len(defaults) == 0:
		return errors.New("no Default cluster: set spec.default: true on exactly one MirrordCluster, or install this Primary with the default component (the single-cluster overlay)")
	case len(defaults) > 1:
		return fmt.Errorf("%d Default clusters (%s): exactly one cluster answers env, files, DNS and outgoing; set spec.default: false on all but one", len(defaults), strings.Join(defaults, ", "))
	}
	return nil
}
