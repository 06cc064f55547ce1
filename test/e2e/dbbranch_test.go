//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/test/e2e/framework"
)

// testDBBranches: a database branch of Debian's PostgreSQL, asked of the Primary p and made in
// the Default cluster d (p itself, or another cluster p copies the branch to) as a mirrord
// user's config asks: the schema and the rows a filter selects,
// the local psql reaching it through the session with the target's own URL (from a Secret)
// rewritten, writes kept in the branch and away from the source, the same id reused by the
// next exec, and the branch gone after its TTL (with its copy in d). A variable the target
// lacks is a clear error that leaves nothing behind.
func testDBBranches(t *testing.T, f *framework.Framework, p, d *framework.Cluster) {
	ctx := f.Context(6 * time.Minute)
	ns := f.SharedNamespace(f.Clusters...)
	f.PostgresApp(ctx, d, ns, "db", nil)
	// The app reads its database's URL from a Secret, as apps do.
	f.NginxApp(ctx, d, ns, "web", nil, map[string]string{"DATABASE_URL": "postgres://postgres@db:5432/shop?sslmode=disable"})
	seed := `for i in 1 2 3 4 5 6 7 8 9 10; do psql -h db -U postgres -c "CREATE DATABASE shop" && break; sleep 0.5; done
psql -h db -U postgres -d shop -v ON_ERROR_STOP=1 -c "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL)" -c "INSERT INTO users SELECT i, 'user' || i FROM generate_series(1, 20) i"`
	if out, err := f.RunPlugin(ctx, p, "-n", ns, "exec", "-t", "deploy/db", "--incoming", "off", "--", "sh", "-c", seed); err != nil {
		t.Fatalf("seeding the source: %v\n%s", err, out)
	}
	dir, err := os.MkdirTemp("", "mirrord-e2e-db-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	config := func(name, variable string) string {
		path := filepath.Join(dir, name+".json")
		body := fmt.Sprintf(`{"feature": {"network": {"incoming": "off"}, "db_branches": [{"type": "pg", "id": "%s", "ttl_secs": 5,
			"connection": {"url": {"type": "env", "variable": "%s"}},
			"copy": {"mode": "schema", "tables": {"users": {"filter": "id <= 3"}}}}]}}`, name, variable)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg := config("team", "DATABASE_URL")
	script := `echo "URL=$DATABASE_URL"; psql "$DATABASE_URL" -tA -v ON_ERROR_STOP=1 -c "SELECT string_agg(name, ',' ORDER BY id) FROM users" -c "INSERT INTO users VALUES (90 + (SELECT count(*) FROM users), 'local')"`

	out, err := f.RunPlugin(ctx, p, "-n", ns, "exec", "-f", cfg, "-t", "deploy/web", "--", "sh", "-c", script)
	if err != nil {
		t.Fatalf("exec with a branch: %v\n%s", err, out)
	}
	if !strings.Contains(out, "\nuser1,user2,user3\n") || !strings.Contains(out, "URL=postgres://postgres@mirrord-db-") || !strings.Contains(out, "created for id team") {
		t.Errorf("want the branch made, its rows (user1..3) and the URL pointed at it:\n%s", out)
	}
	out, err = f.RunPlugin(ctx, p, "-n", ns, "exec", "-f", cfg, "-t", "deploy/web", "--", "sh", "-c", script)
	if err != nil || !strings.Contains(out, "reused for id team") || !strings.Contains(out, "\nuser1,user2,user3,local\n") {
		t.Errorf("a second exec with the same id: want the branch reused, with the first one's write (%v):\n%s", err, out)
	}
	out, err = f.RunPlugin(ctx, p, "-n", ns, "exec", "-t", "deploy/db", "--incoming", "off", "--", "psql", "-h", "db", "-U", "postgres", "-d", "shop", "-tA", "-c", "SELECT count(*), max(id) FROM users")
	if err != nil || !strings.Contains(out, "\n20|20\n") {
		t.Errorf("the source after writes to the branch: want its 20 rows untouched (%v):\n%s", err, out)
	}
	branchesGone := func(what string) {
		f.Eventually(ctx, 60*time.Second, what, func(ctx context.Context) error {
			l, err := p.Mirrord.MirrordV1alpha1().MirrordDBBranches(ns).List(ctx, metav1.ListOptions{})
			if err == nil && len(l.Items) > 0 {
				return fmt.Errorf("branch %s left (%s)", l.Items[0].Name, l.Items[0].Status.Phase)
			}
			copies, err := d.Mirrord.MirrordV1alpha1().MirrordDBBranches(controllerNS).List(ctx, metav1.ListOptions{})
			if err == nil && len(copies.Items) > 0 {
				return fmt.Errorf("branch copy %s left in %s", copies.Items[0].Name, d.Name)
			}
			sel := mirrordv1alpha1.LabelComponent + "=" + mirrordv1alpha1.ComponentDBBranch
			pods, err := d.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
			if err == nil && len(pods.Items) > 0 {
				return fmt.Errorf("branch pod %s left", pods.Items[0].Name)
			}
			svcs, err := d.Kube.CoreV1().Services(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
			if err == nil && len(svcs.Items) > 0 {
				return fmt.Errorf("branch Service %s left", svcs.Items[0].Name)
			}
			return err
		})
	}
	branchesGone("the branch, its pod and Service gone after its 5 s TTL")

	out, err = f.RunPlugin(ctx, p, "-n", ns, "exec", "-f", config("bad", "NO_SUCH_URL"), "-t", "deploy/web", "--", "true")
	if err == nil || !strings.Contains(out, "has no variable NO_SUCH_URL") {
		t.Errorf("a variable the target lacks: want a clear error (%v):\n%s", err, out)
	}
	branchesGone("nothing left by a branch that could not be made")
}
