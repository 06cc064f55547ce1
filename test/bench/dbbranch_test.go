//go:build bench

package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/bench/report"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

// TestBenchDBBranch measures a database branch's creation to Ready, copying every row of a
// 10 MB and of a 100 MB PostgreSQL database (Debian's server, in the same cluster), against
// the engine's own dump and restore of the same database on the same node in the same run,
// interleaved: a pod of the same image that makes a server and pipes pg_dump into psql
// (what a branch does, without kubectl-mirrord around it).
func TestBenchDBBranch(t *testing.T) {
	f := framework.New(t)
	f.RequireClusters(1)
	reps := envInt(t, "MIRRORD_BENCH_DB_COUNT", 3)
	ctx := f.Context(30 * time.Minute)
	c := f.Clusters[0]
	f.InstallAlone(ctx, c)
	ns := f.SharedNamespace(c)
	f.PostgresApp(ctx, c, ns, "db", nil)
	f.NginxApp(ctx, c, ns, "web", map[string]string{"DB_HOST": "db"}, nil)

	sizes := []struct {
		name string
		rows int // of about 540 bytes each
	}{{"10 MB", 19_000}, {"100 MB", 190_000}} // of table and index (logged)
	seed := `set -e; i=0; while [ $i -lt 100 ] && ! psql -h db -U postgres -c 'SELECT 1' >/dev/null 2>&1; do i=$((i+1)); sleep 0.2; done`
	for _, s := range sizes {
		db := dbName(s.name)
		seed += fmt.Sprintf(`
psql -h db -U postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE %[1]s"
psql -h db -U postgres -d %[1]s -v ON_ERROR_STOP=1 -c "CREATE TABLE big (id int PRIMARY KEY, payload text NOT NULL)" -c "INSERT INTO big SELECT i, repeat(md5(i::text), 15) FROM generate_series(1, %[2]d) i"
psql -h db -U postgres -d %[1]s -tA -c "SELECT 'size of %[1]s: ' || pg_size_pretty(pg_total_relation_size('big'))"`, db, s.rows)
	}
	if out, _, err := runPostgresPod(ctx, f, c, ns, "seed", seed); err != nil {
		t.Fatalf("seeding the source: %v\n%s", err, out)
	} else {
		t.Logf("source:\n%s", out)
	}

	// Branches are made as the CLI makes them: in the admin's own name.
	me, err := c.Kube.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var rows []report.Row
	for _, s := range sizes {
		db := dbName(s.name)
		var branch, baseline []float64
		for i := range reps {
			d, err := branchToReady(ctx, c, ns, fmt.Sprintf("%s-%d", db, i), db, me.Status.UserInfo, func(host string) error {
				// Not timed: the branch holds every row.
				out, _, err := runPostgresPod(ctx, f, c, ns, fmt.Sprintf("check-%s-%d", db, i), fmt.Sprintf(`psql -h %s -U postgres -d %s -tA -c "SELECT count(*) FROM big"`, host, db))
				if err == nil && !strings.Contains(out, fmt.Sprint(s.rows)) {
					err = fmt.Errorf("the branch has %s rows, want %d", strings.TrimSpace(out), s.rows)
				}
				return err
			})
			if err != nil {
				t.Fatalf("branch of %s: %v", s.name, err)
			}
			branch = append(branch, d.Seconds())
			out, d, err := runPostgresPod(ctx, f, c, ns, fmt.Sprintf("restore-%s-%d", db, i), fmt.Sprintf(`set -e
initdb -D /tmp/data -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
postgres -D /tmp/data -k /tmp -c listen_addresses= -c fsync=off -c full_page_writes=off -c synchronous_commit=off &
i=0; while [ $i -lt 300 ] && ! psql -h /tmp -U postgres -c 'SELECT 1' >/dev/null 2>&1; do i=$((i+1)); sleep 0.05; done
psql -h /tmp -U postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE %[1]s" >/dev/null
pg_dump --no-owner --no-acl -h db -U postgres %[1]s | psql -h /tmp -U postgres -d %[1]s -v ON_ERROR_STOP=1 -q >/dev/null
psql -h /tmp -U postgres -d %[1]s -tA -c "SELECT count(*) FROM big"`, db))
			if err != nil || !strings.Contains(out, fmt.Sprint(s.rows)) {
				t.Fatalf("dump and restore of %s: %v\n%s", s.name, err, out)
			}
			baseline = append(baseline, d.Seconds())
			t.Logf("%s: branch Ready in %s, dump and restore in %s", s.name, time.Duration(branch[i]*float64(time.Second)), d)
		}
		r := report.Row{Name: fmt.Sprintf("database branch created to Ready (PostgreSQL, copy all, %s)", s.name), Unit: "s", Samples: branch,
			Baseline: "pg_dump | psql into a new server, in a pod on the same node", BaselineSamples: baseline}
		r.RatioAtMost(1.3)
		rows = append(rows, r)
	}
	report.Record(t, rows...)
}

func dbName(size string) string { return "src" + strings.ReplaceAll(strings.ToLower(size), " ", "") }

// branchToReady makes branch name copying database db of deploy/web's server (as user), waits
// until it is Ready, checks it (given its host), and deletes it (waiting until its pod is
// gone, so runs do not overlap).
func branchToReady(ctx context.Context, c *framework.Cluster, ns, name, db string, user authenticationv1.UserInfo, check func(host string) error) (time.Duration, error) {
	branches := c.Mirrord.MirrordV1alpha1().MirrordDBBranches(ns)
	start := time.Now()
	b, err := branches.Create(ctx, &mirrordv1alpha1.MirrordDBBranch{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: mirrordv1alpha1.MirrordDBBranchSpec{ID: name, Owner: user.Username, OwnerGroups: user.Groups,
			Target: mirrordv1alpha1.Target{Kind: mirrordv1alpha1.TargetKindDeployment, Name: "web", Namespace: ns},
			Engine: mirrordv1alpha1.DBEnginePostgreSQL, Database: db,
			Connection: mirrordv1alpha1.DBConnection{Params: &mirrordv1alpha1.DBConnectionParams{
				Host: mirrordv1alpha1.DBValueSource{Variable: "DB_HOST"}, User: &mirrordv1alpha1.DBValueSource{Variable: "DB_USER", Value: "postgres"}}},
			Copy: mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopyAll}, TTLSeconds: 300, CreationTimeoutSeconds: 600}}, metav1.CreateOptions{})
	if err != nil {
		return 0, err
	}
	var took time.Duration
	for {
		got, err := branches.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return 0, err
		}
		if got.Status.Phase == mirrordv1alpha1.DBBranchReady && got.Status.Endpoint != nil {
			took = time.Since(start)
			if err := check(got.Status.Endpoint.Host); err != nil {
				return 0, err
			}
			break
		}
		if got.Status.Phase == mirrordv1alpha1.DBBranchFailed {
			return 0, fmt.Errorf("%s: %s", got.Status.Reason, got.Status.Message)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := branches.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return 0, err
	}
	for {
		pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: mirrordv1alpha1.LabelBranchUID + "=" + string(b.UID)})
		if err != nil {
			return 0, err
		}
		if len(pods.Items) == 0 {
			return took, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for branch %s's pod to go: %w", name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// runPostgresPod runs script in a pod of the rig's PostgreSQL image (as its postgres user) and
// returns its output and the time from the pod's creation to its end.
func runPostgresPod(ctx context.Context, f *framework.Framework, c *framework.Cluster, ns, name, script string) (string, time.Duration, error) {
	pods := c.Kube.CoreV1().Pods(ns)
	start := time.Now()
	_, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
		RestartPolicy:   corev1.RestartPolicyNever,
		SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](999), RunAsGroup: ptr.To[int64](999)},
		Containers: []corev1.Container{{Name: "pg", Image: f.PostgresImage, ImagePullPolicy: corev1.PullNever,
			Command: []string{"/bin/sh", "-c", script}, Env: []corev1.EnvVar{{Name: "PATH", Value: "/usr/lib/postgresql/15/bin:/usr/bin:/bin"}}}},
	}}, metav1.CreateOptions{})
	if err != nil {
		return "", 0, err
	}
	defer func() {
		_ = pods.Delete(context.WithoutCancel(ctx), name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	}()
	for {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return "", 0, err
		}
		if err == nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) {
			took := time.Since(start)
			logs, _ := pods.GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
			if p.Status.Phase == corev1.PodFailed {
				return string(logs), took, fmt.Errorf("pod %s failed", name)
			}
			return string(logs), took, nil
		}
		select {
		case <-ctx.Done():
			return "", 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
