/*
Copyright The kubectl-mirrord Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package apitest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/install"
)

// TestUninstall: an uninstall refuses while a session runs; --keep-crds removes the controller
// and keeps the policies; --force ends the session (its controller lets it go) and leaves
// none of any role's objects behind.
func TestUninstall(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Install(t, "single-cluster")
	for _, ns := range []string{"shop"} {
		if _, err := s.Kube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	runController(t, s)
	sess, err := create(t, s, "", session("shop", "Deployment", "api", "shop"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the controller took the session", func(ctx context.Context) error {
		got, err := s.Mirrord.MirrordV1alpha1().MirrordSessions("shop").Get(ctx, sess.Name, metav1.GetOptions{})
		if err != nil || len(got.Finalizers) == 0 {
			return err
		}
		return nil
	})
	policy := &mirrordv1alpha1.MirrordPolicy{ObjectMeta: metav1.ObjectMeta{Name: "keep", Namespace: "shop"}, Spec: mirrordv1alpha1.PolicySpec{Block: []mirrordv1alpha1.BlockedFeature{mirrordv1alpha1.BlockStealWithoutFilter}}}
	if _, err := s.Mirrord.MirrordV1alpha1().MirrordPolicies("shop").Create(t.Context(), policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var progress bytes.Buffer
	c := s.InstallCluster(t, &progress)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	err = install.Uninstall(ctx, c, install.UninstallOptions{})
	if err == nil || !strings.Contains(err.Error(), "1 sessions are running (mirrordsession shop/"+sess.Name+")") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("uninstall with a session running: %v", err)
	}
	if _, err := s.Kube.CoreV1().Namespaces().Get(t.Context(), install.Namespace, metav1.GetOptions{}); err != nil {
		t.Fatalf("a refused uninstall removed the namespace: %v", err)
	}

	if err := install.Uninstall(ctx, c, install.UninstallOptions{Force: true, KeepCRDs: true}); err != nil {
		t.Fatalf("uninstall --force --keep-crds: %v\n%s", err, progress.String())
	}
	if _, err := s.Mirrord.MirrordV1alpha1().MirrordSessions("shop").Get(t.Context(), sess.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the session outlived uninstall --force: %v", err)
	}
	if _, err := s.Mirrord.MirrordV1alpha1().MirrordPolicies("shop").Get(t.Context(), "keep", metav1.GetOptions{}); err != nil {
		t.Errorf("--keep-crds lost a policy: %v", err)
	}
	left := leftovers(t, s)
	if len(left) != 10 {
		t.Errorf("after --keep-crds: %v, want the 10 CRDs alone", left)
	}
	for _, k := range left {
		if !strings.Contains(k, "CustomResourceDefinition") {
			t.Errorf("%s left behind", k)
		}
	}

	// Again, CRDs and all: nothing of any role is left.
	if err := install.Uninstall(ctx, c, install.UninstallOptions{}); err != nil {
		t.Fatalf("uninstall: %v\n%s", err, progress.String())
	}
	if left := leftovers(t, s); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// leftovers are the objects of any role still in s.
func leftovers(t *testing.T, s *Server) []string {
	t.Helper()
	all, err := install.AllObjects()
	if err != nil {
		t.Fatal(err)
	}
	c := s.InstallCluster(t, nil)
	var out []string
	for _, o := range all {
		gvk := o.GroupVersionKind()
		m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatal(err)
		}
		ri := c.Dynamic.Resource(m.Resource)
		var err2 error
		if o.GetNamespace() != "" {
			_, err2 = ri.Namespace(o.GetNamespace()).Get(t.Context(), o.GetName(), metav1.GetOptions{})
		} else {
			_, err2 = ri.Get(t.Context(), o.GetName(), metav1.GetOptions{})
		}
		if !apierrors.IsNotFound(err2) {
			out = append(out, install.Key(o))
		}
	}
	return out
}
