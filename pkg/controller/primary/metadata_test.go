package primary

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestWithMetadata(t *testing.T) {
	spec := mirrordv1alpha1.MirrordSessionSpec{Owner: "alice", Target: mirrordv1alpha1.Target{Kind: "Deployment", Name: "api"}}
	right := map[string]string{mirrordv1alpha1.LabelOwner: "alice", mirrordv1alpha1.LabelTargetKind: "deployment", mirrordv1alpha1.LabelTargetName: "api"}
	session := func(labels map[string]string, finalizers ...string) *mirrordv1alpha1.MirrordSession {
		return &mirrordv1alpha1.MirrordSession{ObjectMeta: metav1.ObjectMeta{Labels: labels, Finalizers: finalizers}, Spec: spec}
	}
	for name, tc := range map[string]struct {
		in         *mirrordv1alpha1.MirrordSession
		wantUpdate bool
	}{
		"new: finalizer and labels":      {in: session(nil), wantUpdate: true},
		"labels forged by the creator":   {in: session(map[string]string{mirrordv1alpha1.LabelOwner: "bob", "team": "x"}, mirrordv1alpha1.FinalizerChildren), wantUpdate: true},
		"finalizer missing":              {in: session(right), wantUpdate: true},
		"as the Primary keeps it":        {in: session(right, mirrordv1alpha1.FinalizerChildren)},
		"other labels and finalizers ok": {in: session(map[string]string{mirrordv1alpha1.LabelOwner: "alice", mirrordv1alpha1.LabelTargetKind: "deployment", mirrordv1alpha1.LabelTargetName: "api", "team": "x"}, "x/y", mirrordv1alpha1.FinalizerChildren)},
	} {
		t.Run(name, func(t *testing.T) {
			got, ok := withMetadata(tc.in)
			if ok != tc.wantUpdate {
				t.Fatalf("update = %v, want %v", ok, tc.wantUpdate)
			}
			if !ok {
				return
			}
			for k, v := range right {
				if got.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, got.Labels[k], v)
				}
			}
			if tc.in.Labels["team"] != "" && got.Labels["team"] != tc.in.Labels["team"] {
				t.Errorf("another label was lost: %v", got.Labels)
			}
			if !hasFinalizer(got) {
				t.Error("no finalizer")
			}
			if tc.in.Labels != nil && tc.in.Labels[mirrordv1alpha1.LabelOwner] == "bob" && got.Labels[mirrordv1alpha1.LabelOwner] == "bob" {
				t.Error("the forged owner label stayed")
			}
		})
	}
}
