// Package install renders the kustomize overlays that install kubectl-mirrord's roles, with
// the same library `kustomize build` and `kubectl apply -k` use.
package install

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Overlays are the admin's choices, one per role combination.
var Overlays = []string{"single-cluster", "primary", "primary-management-only", "workload", "workload-default"}

// DefaultImageName is the controller image the base names (what `make image` builds).
const DefaultImageName = "mirrord.local/kubectl-mirrord"

// Options adjust a rendering the way an admin's own overlay would.
type Options struct {
	// Image replaces the controller and agent image (kustomize edit set image).
	Image string
	// ClusterName sets the clusterName role setting.
	ClusterName string
}

// Render builds overlay (a directory name under kustomizeDir/overlays) and returns the YAML
// stream to apply. With options it renders a throwaway overlay on top, as an admin would.
func Render(kustomizeDir, overlay string, o Options) ([]byte, error) {
	dir, err := filepath.Abs(filepath.Join(kustomizeDir, "overlays", overlay))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "kustomization.yaml")); err != nil {
		return nil, fmt.Errorf("overlay %q: %w (choose one of %v)", overlay, err, Overlays)
	}
	fs := filesys.MakeFsOnDisk()
	restrict := types.LoadRestrictionsRootOnly
	if o != (Options{}) {
		// A throwaway overlay that only refers to the real one, as an admin's own would.
		tmp, err := os.MkdirTemp("", "kubectl-mirrord-overlay-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		rel, err := filepath.Rel(tmp, dir)
		if err != nil {
			return nil, err
		}
		k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- " + rel + "\n"
		if o.Image != "" {
			name, tag := splitImage(o.Image)
			k += "images:\n- name: " + DefaultImageName + "\n  newName: " + name + "\n  newTag: " + tag + "\n"
		}
		if o.ClusterName != "" {
			k += "configMapGenerator:\n- name: mirrord-roles\n  namespace: mirrord-system\n  behavior: merge\n  literals:\n  - clusterName=" + o.ClusterName + "\n"
		}
		if err := os.WriteFile(filepath.Join(tmp, "kustomization.yaml"), []byte(k), 0o644); err != nil {
			return nil, err
		}
		// The real overlay lies outside the throwaway root.
		dir, restrict = tmp, types.LoadRestrictionsNone
	}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = restrict
	m, err := krusty.MakeKustomizer(opts).Run(fs, dir)
	if err != nil {
		return nil, fmt.Errorf("rendering overlay %s: %w", overlay, err)
	}
	return m.AsYaml()
}

// splitImage splits REGISTRY/NAME:TAG at the tag's colon (not a registry port's).
func splitImage(ref string) (string, string) {
	slash := -1
	for i := len(ref) - 1; i >= 0; i-- {
		switch ref[i] {
		case '/':
			slash = i
		case ':':
			if slash == -1 {
				return ref[:i], ref[i+1:]
			}
		}
		if slash != -1 {
			break
		}
	}
	return ref, "latest"
}
