package target

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestParse(t *testing.T) {
	cases := map[string]struct {
		in, container string
		want          mirrordv1alpha1.Target
		wantErr       string
	}{
		"kubectl short":      {in: "deploy/api", want: mirrordv1alpha1.Target{Kind: "Deployment", Name: "api", Namespace: "ns"}},
		"mirrord long":       {in: "deployment/api/container/main", want: mirrordv1alpha1.Target{Kind: "Deployment", Name: "api", Namespace: "ns", Container: "main"}},
		"pod with -c":        {in: "pod/api-0", container: "side", want: mirrordv1alpha1.Target{Kind: "Pod", Name: "api-0", Namespace: "ns", Container: "side"}},
		"sts":                {in: "sts/db", want: mirrordv1alpha1.Target{Kind: "StatefulSet", Name: "db", Namespace: "ns"}},
		"rs group suffix":    {in: "replicasets.apps/x", want: mirrordv1alpha1.Target{Kind: "ReplicaSet", Name: "x", Namespace: "ns"}},
		"ds upper":           {in: "DS/agent", want: mirrordv1alpha1.Target{Kind: "DaemonSet", Name: "agent", Namespace: "ns"}},
		"same container":     {in: "pod/a/container/c", container: "c", want: mirrordv1alpha1.Target{Kind: "Pod", Name: "a", Namespace: "ns", Container: "c"}},
		"empty":              {in: "", wantErr: "no target given"},
		"targetless":         {in: "targetless", want: mirrordv1alpha1.Target{Kind: "Targetless", Namespace: "ns"}},
		"targetless upper":   {in: "Targetless", want: mirrordv1alpha1.Target{Kind: "Targetless", Namespace: "ns"}},
		"targetless with -c": {in: "targetless", container: "main", wantErr: "has no container"},
		"bare name":          {in: "api", wantErr: "KIND/NAME"},
		"unknown kind":       {in: "route/api", wantErr: `unknown kind "route"`},
		"job":                {in: "job/migrate", want: mirrordv1alpha1.Target{Kind: "Job", Name: "migrate", Namespace: "ns"}},
		"cronjob short":      {in: "cj/nightly", want: mirrordv1alpha1.Target{Kind: "CronJob", Name: "nightly", Namespace: "ns"}},
		"service short":      {in: "svc/api", want: mirrordv1alpha1.Target{Kind: "Service", Name: "api", Namespace: "ns"}},
		"argo rollout":       {in: "rollouts.argoproj.io/api/container/app", want: mirrordv1alpha1.Target{Kind: "Rollout", Name: "api", Namespace: "ns", Container: "app"}},
		"labels":             {in: "labels/app=api,tier=web", want: mirrordv1alpha1.Target{Kind: "Labels", Labels: map[string]string{"app": "api", "tier": "web"}, Namespace: "ns"}},
		"labels none":        {in: "labels/", wantErr: "labels/KEY=VALUE"},
		"labels with prefixed keys": {in: "labels/app.kubernetes.io/name=billing,tier=backend", want: mirrordv1alpha1.Target{Kind: "Labels",
			Labels: map[string]string{"app.kubernetes.io/name": "billing", "tier": "backend"}, Namespace: "ns"}},
		"prefixed keys and a container": {in: "labels/app.kubernetes.io/name=billing/container/app", want: mirrordv1alpha1.Target{Kind: "Labels",
			Labels: map[string]string{"app.kubernetes.io/name": "billing"}, Container: "app", Namespace: "ns"}},
		"labels bad":        {in: "labels/app", wantErr: "labels/KEY=VALUE"},
		"bad name":          {in: "deploy/API_x", wantErr: "not a valid name"},
		"bad container key": {in: "pod/a/c/x", wantErr: "expected .../container/CONTAINER"},
		"conflict":          {in: "pod/a/container/x", container: "y", wantErr: "give it once"},
		"bad container":     {in: "pod/a", container: "Bad_", wantErr: "not a valid container name"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Parse(tc.in, tc.container, "ns")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want it to contain %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse(%q) (-want,+got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestStringRoundTrip(t *testing.T) {
	for _, in := range []string{"deployment/api", "pod/a/container/c", "statefulset/db", "daemonset/x", "replicaset/y", "targetless", "job/j", "cronjob/c", "service/s", "rollout/r", "labels/app=api,tier=web", "labels/app.kubernetes.io/name=x,tier=y"} {
		tg, err := Parse(in, "", "ns")
		if err != nil {
			t.Fatal(err)
		}
		if got := String(tg); got != in {
			t.Errorf("String(Parse(%q)) = %q", in, got)
		}
	}
}
