// Package install renders and applies the kustomize overlays that install kubectl-mirrord's
// roles, with the same library `kustomize build` and `kubectl apply -k` use. The overlays are
// the repository's own files, embedded in the binary (kubectlmirrord.Manifests), so the
// plugin installs without a checkout.
package install

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	kubectlmirrord "github.com/kubectl-mirrord/kubectl-mirrord"
)

// Overlays are the admin's choices, one per role combination (`install --role`).
var Overlays = []string{"single-cluster", "primary", "primary-management-only", "workload", "workload-default"}

// ImageName is the controller's (and agents') image as the base names it: the canonical
// repository. A release sets its tag in kustomize/base.
const ImageName = "ghcr.io/kubectl-mirrord/kubectl-mirrord"

// Options adjust a rendering the way an admin's own overlay would.
type Options struct {
	// Image replaces the controller and agent image: REPOSITORY:TAG or REPOSITORY@DIGEST.
	Image string
	// ClusterName sets the clusterName role setting.
	ClusterName string
	// ControllerArgs are appended to the controller's arguments (--agent-max-procs=2, ...).
	ControllerArgs []string
}

// Render builds overlay and returns the YAML stream to apply. With options it renders a
// throwaway overlay on top of it, as an admin's own would.
func Render(overlay string, o Options) ([]byte, error) {
	if !slices.Contains(Overlays, overlay) {
		return nil, fmt.Errorf("no role %q: choose one of %s", overlay, strings.Join(Overlays, ", "))
	}
	mem, err := embedded()
	if err != nil {
		return nil, err
	}
	dir := "/kustomize/overlays/" + overlay
	if o.Image != "" || o.ClusterName != "" || len(o.ControllerArgs) > 0 {
		k, err := throwawayOverlay(overlay, o)
		if err != nil {
			return nil, err
		}
		dir = "/install"
		if err := mem.WriteFile(dir+"/kustomization.yaml", k); err != nil {
			return nil, err
		}
	}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsNone // the throwaway overlay refers outside itself
	m, err := krusty.MakeKustomizer(opts).Run(mem, dir)
	if err != nil {
		return nil, fmt.Errorf("rendering role %s: %w", overlay, err)
	}
	return m.AsYaml()
}

// embedded is the repository's kustomize tree and CRDs in kustomize's in-memory file system.
func embedded() (filesys.FileSystem, error) {
	mem := filesys.MakeFsInMemory()
	err := fs.WalkDir(kubectlmirrord.Manifests, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := kubectlmirrord.Manifests.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile("/"+p, b)
	})
	return mem, err
}

// throwawayOverlay is the kustomization an admin would write on top of overlay for o.
func throwawayOverlay(overlay string, o Options) ([]byte, error) {
	var b strings.Builder
	b.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../kustomize/overlays/" + overlay + "\n")
	if o.Image != "" {
		name, tag, digest, err := splitImage(o.Image)
		if err != nil {
			return nil, err
		}
		b.WriteString("images:\n- name: " + ImageName + "\n  newName: " + name + "\n")
		if digest != "" {
			b.WriteString("  digest: " + digest + "\n")
		} else {
			b.WriteString("  newTag: " + tag + "\n")
		}
	}
	if o.ClusterName != "" {
		b.WriteString("configMapGenerator:\n- name: mirrord-roles\n  namespace: mirrord-system\n  behavior: merge\n  literals:\n  - clusterName=" + o.ClusterName + "\n")
	}
	if len(o.ControllerArgs) > 0 {
		b.WriteString("patches:\n- target: {kind: Deployment, name: mirrord-controller}\n  patch: |-\n")
		for _, a := range o.ControllerArgs {
			if !strings.HasPrefix(a, "--") || strings.ContainsAny(a, "\n\"\\") {
				return nil, fmt.Errorf("controller flag %q: give each as --name=value", a)
			}
			fmt.Fprintf(&b, "    - {op: add, path: /spec/template/spec/containers/0/args/-, value: %q}\n", a)
		}
	}
	return []byte(b.String()), nil
}

// splitImage splits REGISTRY/NAME:TAG at the tag's colon (not a registry port's), and
// REGISTRY/NAME@sha256:... at the @.
func splitImage(ref string) (name, tag, digest string, err error) {
	if ref == "" || strings.ContainsAny(ref, " \t\n\"'") {
		return "", "", "", fmt.Errorf("image %q: write REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:...", ref)
	}
	if n, d, ok := strings.Cut(ref, "@"); ok {
		if !strings.HasPrefix(d, "sha256:") || len(d) != len("sha256:")+64 {
			return "", "", "", fmt.Errorf("image %q: a digest is sha256: and 64 hex digits", ref)
		}
		return n, "", d, nil
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[:i], ref[i+1:], "", nil
	}
	return ref, "latest", "", nil
}

// Objects decodes a rendered YAML stream.
func Objects(y []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(y), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// AllObjects are the objects of every role, each once: what an uninstall looks for, whatever
// role was installed (and whatever cluster name or image it was given).
func AllObjects() ([]*unstructured.Unstructured, error) {
	seen := map[string]bool{}
	var all []*unstructured.Unstructured
	for _, overlay := range Overlays {
		y, err := Render(overlay, Options{})
		if err != nil {
			return nil, err
		}
		objs, err := Objects(y)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if k := Key(o); !seen[k] {
				seen[k] = true
				all = append(all, o)
			}
		}
	}
	return all, nil
}

// Key names an object: group/kind namespace/name.
func Key(o *unstructured.Unstructured) string {
	gvk := o.GroupVersionKind()
	return path.Join(gvk.Group, gvk.Kind) + " " + path.Join(o.GetNamespace(), o.GetName())
}
