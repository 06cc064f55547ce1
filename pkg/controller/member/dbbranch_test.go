package member

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/dbbranch"
)

func TestBranchEnv(t *testing.T) {
	secretRef := &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}
	c := &corev1.Container{Name: "app",
		Env: []corev1.EnvVar{
			{Name: "UNRELATED_SECRET", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "x"}}},
			{Name: "DB_PASSWORD", ValueFrom: secretRef},
			{Name: "DATABASE_URL", Value: "postgres://app:$(DB_PASSWORD)@db:5432/shop"},
			{Name: "DB_HOST", Value: "db"},
			{Name: "LIMIT", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.memory"}}},
		},
	}
	withFrom := c.DeepCopy()
	withFrom.EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "all"}}}}
	spec := dbbranch.Branch{Engine: mirrordv1alpha1.DBEnginePostgreSQL, Port: 5432}
	names := func(env []corev1.EnvVar) []string {
		var out []string
		for _, e := range env {
			out = append(out, e.Name+"="+e.Value)
		}
		return out
	}
	for name, tc := range map[string]struct {
		c        *corev1.Container
		conn     mirrordv1alpha1.DBConnection
		want     []string
		wantFrom bool
		wantErr  string
	}{
		"a URL that refers to a Secret's variable: both, in order, nothing else": {c: c,
			conn: mirrordv1alpha1.DBConnection{URL: &mirrordv1alpha1.DBValueSource{Variable: "DATABASE_URL"}},
			want: []string{"DB_PASSWORD=", "DATABASE_URL=postgres://app:$(DB_PASSWORD)@db:5432/shop", "MIRRORD_DB_URL=$(DATABASE_URL)"}},
		"params: a variable, a literal, a Secret key": {c: c,
			conn: mirrordv1alpha1.DBConnection{Params: &mirrordv1alpha1.DBConnectionParams{
				Host: mirrordv1alpha1.DBValueSource{Variable: "DB_HOST"}, User: &mirrordv1alpha1.DBValueSource{Variable: "DB_USER", Value: "app"},
				Password: &mirrordv1alpha1.DBValueSource{Secret: &mirrordv1alpha1.DBSecretKey{Name: "db", Key: "password"}}}},
			want: []string{"DB_HOST=db", "MIRRORD_DB_HOST=$(DB_HOST)", "MIRRORD_DB_USER=app", "MIRRORD_DB_PASSWORD="}},
		"a variable only envFrom can hold": {c: withFrom, conn: mirrordv1alpha1.DBConnection{URL: &mirrordv1alpha1.DBValueSource{Variable: "FROM_SECRET"}},
			want: []string{"MIRRORD_DB_URL=$(FROM_SECRET)"}, wantFrom: true},
		"a variable the target lacks": {c: c, conn: mirrordv1alpha1.DBConnection{URL: &mirrordv1alpha1.DBValueSource{Variable: "NOPE"}},
			wantErr: "the target's container app has no variable NOPE"},
		"a variable naming the target's container": {c: c, conn: mirrordv1alpha1.DBConnection{URL: &mirrordv1alpha1.DBValueSource{Variable: "LIMIT"}},
			wantErr: "no variable LIMIT"},
	} {
		env, from, err := branchEnv(tc.c, tc.conn, spec)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %v, want %q", name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := names(env)
		if last := got[len(got)-1]; !strings.HasPrefix(last, dbbranch.EnvBranch+"=") {
			t.Errorf("%s: the branch's spec is not last: %q", name, got)
		}
		if !reflect.DeepEqual(got[:len(got)-1], tc.want) {
			t.Errorf("%s: env %q, want %q", name, got[:len(got)-1], tc.want)
		}
		if (from != nil) != tc.wantFrom || (from != nil && !*from[0].SecretRef.Optional) {
			t.Errorf("%s: envFrom %+v, want copied (optional) %v", name, from, tc.wantFrom)
		}
	}
}

func TestBranchStateOf(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	b := &mirrordv1alpha1.MirrordDBBranch{ObjectMeta: metav1.ObjectMeta{UID: "u1", CreationTimestamp: metav1.Time{Time: t0}},
		Spec: mirrordv1alpha1.MirrordDBBranchSpec{Engine: mirrordv1alpha1.DBEnginePostgreSQL, CreationTimeoutSeconds: 60, Database: "shop"}}
	pod := func(mutate func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning}}
		mutate(p)
		return p
	}
	for name, tc := range map[string]struct {
		pod   *corev1.Pod
		now   time.Duration
		phase mirrordv1alpha1.DBBranchPhase
		msg   string
	}{
		"no pod yet": {now: time.Second, phase: mirrordv1alpha1.DBBranchPending, msg: "copying"},
		"seeding":    {pod: pod(func(*corev1.Pod) {}), now: 10 * time.Second, phase: mirrordv1alpha1.DBBranchPending},
		"too long":   {pod: pod(func(*corev1.Pod) {}), now: 61 * time.Second, phase: mirrordv1alpha1.DBBranchFailed, msg: "creation timeout (1m0s)"},
		"ready": {pod: pod(func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}), phase: mirrordv1alpha1.DBBranchReady},
		"seed failed": {pod: pod(func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "db", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: "copy the schema: pg_dump: connection refused"}}}}
		}), phase: mirrordv1alpha1.DBBranchFailed, msg: "db container failed: copy the schema: pg_dump: connection refused"},
		"no image": {pod: pod(func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "db", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "not found"}}}}
		}), phase: mirrordv1alpha1.DBBranchFailed, msg: "cannot start: ErrImagePull"},
	} {
		st := branchStateOf(b, "shop", tc.pod, t0.Add(tc.now))
		if tc.pod == nil {
			ready := b.DeepCopy()
			ready.Status.Phase = mirrordv1alpha1.DBBranchReady
			if gone := branchStateOf(ready, "shop", nil, t0.Add(tc.now)); gone.Phase != mirrordv1alpha1.DBBranchFailed || !strings.Contains(gone.Message, "pod is gone") {
				t.Errorf("%s, after Ready: %s %q, want Failed, its pod gone", name, gone.Phase, gone.Message)
			}
		}
		if st.Phase != tc.phase || !strings.Contains(st.Message, tc.msg) {
			t.Errorf("%s: %s %q, want %s ...%s...", name, st.Phase, st.Message, tc.phase, tc.msg)
		}
		if (st.Phase == mirrordv1alpha1.DBBranchReady) != (st.Endpoint != nil) || (st.Endpoint != nil && (st.Endpoint.Port != 5432 || !strings.HasSuffix(st.Endpoint.Host, ".shop.svc"))) {
			t.Errorf("%s: endpoint %+v", name, st.Endpoint)
		}
	}
}
