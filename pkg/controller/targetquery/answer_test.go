package targetquery

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/protocol"
)

func answer(name string, paths ...string) clusterAnswer {
	return clusterAnswer{name: name, answer: protocol.TargetsAnswer{Targets: paths}}
}

func TestMerge(t *testing.T) {
	got := merge([]clusterAnswer{
		answer("c3", "pod/api-2", "deployment/api", "deployment/api", "job/x"),
		answer("c2", "pod/api-1/container/app", "deployment/api", "../../etc/passwd", "Deployment/Bad_Name", "targetless"),
		{name: "c4", err: errors.New("down"), answer: protocol.TargetsAnswer{Targets: []string{"deployment/ghost"}}},
	})
	want := []mirrordv1alpha1.FoundTarget{
		{Path: "deployment/api", Clusters: []string{"c2", "c3"}},
		{Path: "job/x", Clusters: []string{"c3"}},
		{Path: "pod/api-1/container/app", Clusters: []string{"c2"}},
		{Path: "pod/api-2", Clusters: []string{"c3"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merge: %+v\nwant %+v", got, want)
	}
}

func TestNamesToReview(t *testing.T) {
	found := merge([]clusterAnswer{answer("c2", "deployment/a", "deployment/b", "pod/p/container/x", "pod/p/container/y", "service/s")})
	names, more := namesToReview(found, map[mirrordv1alpha1.TargetKind]bool{mirrordv1alpha1.TargetKindService: true})
	want := []object{{mirrordv1alpha1.TargetKindDeployment, "a"}, {mirrordv1alpha1.TargetKindDeployment, "b"}, {mirrordv1alpha1.TargetKindPod, "p"}}
	if !reflect.DeepEqual(names, want) || more {
		t.Errorf("names %v more %v, want %v (a pod's containers are one review)", names, more, want)
	}
	var many []string
	for i := range MaxNameReviews + 1 {
		many = append(many, fmt.Sprintf("deployment/d%03d", i))
	}
	names, more = namesToReview(merge([]clusterAnswer{answer("c2", many...)}), nil)
	if len(names) != MaxNameReviews || !more {
		t.Errorf("%d names, more %v; want %d and more", len(names), more, MaxNameReviews)
	}
}

func TestDecide(t *testing.T) {
	deploy, pod := mirrordv1alpha1.TargetKindDeployment, mirrordv1alpha1.TargetKindPod
	answers := []clusterAnswer{
		answer("c2", "deployment/api", "deployment/worker", "pod/api-1"),
		answer("c3", "deployment/api"),
		{name: "c4", err: errors.New("cluster c4 did not answer in time")},
		{name: "c5", answer: protocol.TargetsAnswer{Problem: "this cluster's admin excludes namespace shop from sessions"}},
	}
	for name, tc := range map[string]struct {
		kinds     map[mirrordv1alpha1.TargetKind]bool
		names     map[object]bool
		namesLeft bool
		answers   []clusterAnswer
		want      []string
		counts    map[string]int32
		phase     mirrordv1alpha1.TargetQueryPhase
		message   string
	}{
		"whole kinds granted": {kinds: map[mirrordv1alpha1.TargetKind]bool{deploy: true, pod: true},
			want: []string{"deployment/api", "deployment/worker", "pod/api-1"}, counts: map[string]int32{"c2": 3, "c3": 1},
			phase: mirrordv1alpha1.TargetQueryComplete},
		"one deployment by name": {names: map[object]bool{{deploy, "api"}: true},
			want: []string{"deployment/api"}, counts: map[string]int32{"c2": 1, "c3": 1}, phase: mirrordv1alpha1.TargetQueryComplete},
		"nothing granted": {want: nil, counts: map[string]int32{}, phase: mirrordv1alpha1.TargetQueryComplete},
		"names left unasked": {kinds: map[mirrordv1alpha1.TargetKind]bool{deploy: true}, namesLeft: true,
			want: []string{"deployment/api", "deployment/worker"}, counts: map[string]int32{"c2": 2, "c3": 1},
			phase: mirrordv1alpha1.TargetQueryComplete, message: "asked about 100 workloads by name"},
		"no cluster answered": {answers: answers[2:3], phase: mirrordv1alpha1.TargetQueryFailed, message: "no Workload cluster answered",
			counts: map[string]int32{}},
		"no Workload cluster": {answers: []clusterAnswer{}, phase: mirrordv1alpha1.TargetQueryFailed, message: "no Workload cluster is registered"},
	} {
		in := answers
		if tc.answers != nil {
			in = tc.answers
		}
		st := decide(in, merge(in), tc.kinds, tc.names, tc.namesLeft)
		var got []string
		for _, f := range st.Targets {
			got = append(got, f.Path)
		}
		if !reflect.DeepEqual(got, tc.want) || st.Phase != tc.phase || !strings.Contains(st.Message, tc.message) {
			t.Errorf("%s: targets %q phase %s message %q; want %q %s %q", name, got, st.Phase, st.Message, tc.want, tc.phase, tc.message)
		}
		if tc.namesLeft != st.Truncated {
			t.Errorf("%s: truncated %v, want %v", name, st.Truncated, tc.namesLeft)
		}
		for _, c := range st.Clusters {
			if c.Targets != tc.counts[c.Name] {
				t.Errorf("%s: cluster %s counts %d, want %d", name, c.Name, c.Targets, tc.counts[c.Name])
			}
			if (c.Name == "c4" || c.Name == "c5") != (c.Problem != "") {
				t.Errorf("%s: cluster %s problem %q", name, c.Name, c.Problem)
			}
		}
	}
}
