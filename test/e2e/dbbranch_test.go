//go:build e2e

package e2e

import (
	"context"
	"errors"
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

// dbEngine is what testDBBranches does differently for one engine.
type dbEngine struct {
	// deploy starts the source database as Deployment and Service "db" in c/ns, and the target
	// "web" whose environment says where it is (env in the clear, secret from a Secret).
	deploy func(ctx context.Context, f *framework.Framework, c *framework.Cluster, ns string)
	// seed, run locally through a session on deploy/db, makes database shop with table users
	// (ids 1 to 20, names user1...).
	seed string
	// config is feature.db_branches[0] without id, ttl and copy: %s is the variable (or the
	// host's variable) the connection names.
	config, variable string
	// query prints the users' names joined by ',' in id order, then inserts one named local;
	// count prints "COUNT|MAX(id)" of users on the source; both run locally in a session.
	query, count string
	// rewritten is what the query's output shows of the connection pointed at the branch.
	rewritten string
	// nowhere is a variable of the target naming a source whose host does not resolve;
	// noColumn is what the engine says of a filter on a column users lacks.
	nowhere, noColumn string
}

var postgresEngine = dbEngine{
	deploy: func(ctx context.Context, f *framework.Framework, c *framework.Cluster, ns string) {
		f.PostgresApp(ctx, c, ns, "db", nil)
		// The app reads its database's URL from a Secret, as apps do.
		f.NginxApp(ctx, c, ns, "web", map[string]string{"NOWHERE_URL": "postgres://postgres@nowhere:5432/shop"},
			map[string]string{"DATABASE_URL": "postgres://postgres@db:5432/shop?sslmode=disable"})
	},
	seed: `for i in 1 2 3 4 5 6 7 8 9 10; do psql -h db -U postgres -c "CREATE DATABASE shop" && break; sleep 0.5; done
psql -h db -U postgres -d shop -v ON_ERROR_STOP=1 -c "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL)" -c "INSERT INTO users SELECT i, 'user' || i FROM generate_series(1, 20) i"`,
	config:    `"type": "pg", "connection": {"url": {"type": "env", "variable": "%s"}}`,
	variable:  "DATABASE_URL",
	query:     `echo "URL=$DATABASE_URL"; psql "$DATABASE_URL" -tA -v ON_ERROR_STOP=1 -c "SELECT string_agg(name, ',' ORDER BY id) FROM users" -c "INSERT INTO users VALUES (90 + (SELECT count(*) FROM users), 'local')"`,
	count:     `psql -h db -U postgres -d shop -tA -c "SELECT count(*) || '|' || max(id) FROM users"`,
	rewritten: "URL=postgres://postgres@mirrord-db-",
	nowhere:   "NOWHERE_URL",
	noColumn:  `column "nosuchcolumn" does not exist`,
}

// mariadbEngine is Debian's MariaDB, named as mirrord users name it (type mysql), its
// connection in parts: the host and port variables are what the branch changes.
var mariadbEngine = dbEngine{
	deploy: func(ctx context.Context, f *framework.Framework, c *framework.Cluster, ns string) {
		f.MariaDBApp(ctx, c, ns, "db")
		f.NginxApp(ctx, c, ns, "web", map[string]string{"DB_HOST": "db", "DB_PORT": "3306", "DB_USER": "app", "DB_NAME": "shop", "NOWHERE_HOST": "nowhere"},
			map[string]string{"DB_PASSWORD": "app-secret"})
	},
	seed: `for i in 1 2 3 4 5 6 7 8 9 10; do mariadb -h db -u app -papp-secret -e "CREATE DATABASE shop" && break; sleep 0.5; done
mariadb -h db -u app -papp-secret shop -e "CREATE TABLE users (id int PRIMARY KEY, name varchar(20) NOT NULL); INSERT INTO users SELECT seq, concat('user', seq) FROM seq_1_to_20"`,
	config:    `"type": "mysql", "connection": {"type": "env", "params": {"host": "%s", "port": "DB_PORT", "user": "DB_USER", "password": "DB_PASSWORD", "database": "DB_NAME"}}`,
	variable:  "DB_HOST",
	query:     `echo "HOST=$DB_HOST:$DB_PORT"; mariadb -h "$DB_HOST" -P "$DB_PORT" -u "$DB_USER" -p"$DB_PASSWORD" -N -B "$DB_NAME" -e "SELECT group_concat(name ORDER BY id) FROM users; INSERT INTO users SELECT 90 + count(*), 'local' FROM users"`,
	count:     `mariadb -h db -u app -papp-secret -N -B shop -e "SELECT concat(count(*), '|', max(id)) FROM users"`,
	rewritten: "HOST=mirrord-db-",
	nowhere:   "NOWHERE_HOST",
	noColumn:  "Unknown column 'nosuchcolumn'",
}

// testDBBranches: a database branch of e's real server, asked of the Primary p and made in
// the Default cluster d (p itself, or another cluster p copies the branch to) as a mirrord
// user's config asks: the schema and the rows a filter selects, the local client reaching it
// through the session with the target's own connection (from a Secret, or in parts)
// rewritten, writes kept in the branch and away from the source, the same id reused by the
// next exec, and the branch gone after its TTL (with its copy in d). An unknown engine, a
// variable the target lacks, a source that cannot be reached and a failing dump are each a
// clear error that leaves nothing behind.
func testDBBranches(t *testing.T, f *framework.Framework, e dbEngine, p, d *framework.Cluster) {
	ctx := f.Context(6 * time.Minute)
	ns := f.SharedNamespace(f.Clusters...)
	e.deploy(ctx, f, d, ns)
	if out, err := f.RunPlugin(ctx, p, "-n", ns, "exec", "-t", "deploy/db", "--incoming", "off", "--", "sh", "-c", e.seed); err != nil {
		t.Fatalf("seeding the source: %v\n%s", err, out)
	}
	dir, err := os.MkdirTemp("", "mirrord-e2e-db-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	config := func(name, variable string, filter ...string) string {
		path := filepath.Join(dir, name+".json")
		filter = append(filter, "id <= 3")
		body := fmt.Sprintf(`{"feature": {"network": {"incoming": "off"}, "db_branches": [{%s, "id": "%s", "ttl_secs": 5,
			"copy": {"mode": "schema", "tables": {"users": {"filter": %q}}}}]}}`, fmt.Sprintf(e.config, variable), name, filter[0])
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg := config("team", e.variable)
	script := e.query

	out, err := f.RunPlugin(ctx, p, "-n", ns, "exec", "-f", cfg, "-t", "deploy/web", "--", "sh", "-c", script)
	if err != nil {
		t.Fatalf("exec with a branch: %v\n%s", err, out)
	}
	if !strings.Contains(out, "\nuser1,user2,user3\n") || !strings.Contains(out, e.rewritten) || !strings.Contains(out, "created for id team") {
		t.Errorf("want the branch made, its rows (user1..3) and the URL pointed at it:\n%s", out)
	}
	out, err = f.RunPlugin(ctx, p, "-n", ns, "exec", "-f", cfg, "-t", "deploy/web", "--", "sh", "-c", script)
	if err != nil || !strings.Contains(out, "reused for id team") || !strings.Contains(out, "\nuser1,user2,user3,local\n") {
		t.Errorf("a second exec with the same id: want the branch reused, with the first one's write (%v):\n%s", err, out)
	}
	out, err = f.RunPlugin(ctx, p, "-n", ns, "exec", "-t", "deploy/db", "--incoming", "off", "--", "sh", "-c", e.count)
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

	// kill -9 of the controllers (the Default's, and the Primary's when it copies) while a
	// branch is being made: the branch's pod goes on, the restarted controllers pick it up,
	// and the session gets its branch; nothing is left after its TTL.
	if framework.Rig() != "" {
		cmd, buf := f.StartPlugin(p, "-n", ns, "exec", "-f", config("survivor", e.variable), "-t", "deploy/web", "--", "sh", "-c", script)
		sel := mirrordv1alpha1.LabelComponent + "=" + mirrordv1alpha1.ComponentDBBranch
		f.Eventually(ctx, 60*time.Second, "the branch's pod", func(ctx context.Context) error {
			pods, err := d.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
			if err == nil && len(pods.Items) == 0 {
				err = errors.New("no branch pod yet")
			}
			return err
		})
		killController(ctx, t, d)
		if p != d {
			killController(ctx, t, p)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if out := buf.String(); err != nil || !strings.Contains(out, "\nuser1,user2,user3\n") {
				t.Errorf("exec while the controllers were killed: want the branch's rows (%v):\n%s", err, out)
			}
		case <-time.After(3 * time.Minute):
			t.Errorf("exec while the controllers were killed: still running after 3 min:\n%s", buf.String())
		}
		branchesGone("nothing left by the branch made through the controllers' kill -9, after its TTL")
	}

	for _, bad := range []struct {
		what, cfg string
		says      []string
	}{
		{"a variable the target lacks", config("novar", "NO_SUCH_VAR"), []string{"has no variable NO_SUCH_VAR"}},
		{"a source that cannot be reached", config("nowhere", e.nowhere), []string{"CopyFailed", "copy the schema", "nowhere"}},
		{"a failing dump (a filter on a column the table lacks)", config("nocolumn", e.variable, "nosuchcolumn = 1"), []string{"CopyFailed", "copy the rows of users", e.noColumn}},
	} {
		out, err = f.RunPlugin(ctx, p, "-n", ns, "exec", "-f", bad.cfg, "-t", "deploy/web", "--", "true")
		for _, want := range bad.says {
			if err == nil || !strings.Contains(out, want) {
				t.Errorf("%s: want an error saying %q (%v):\n%s", bad.what, want, err, out)
			}
		}
	}
	unknown := filepath.Join(dir, "unknown.json")
	if err := os.WriteFile(unknown, []byte(`{"feature": {"db_branches": [{"type": "oracle", "connection": {"url": {"type": "env", "variable": "X"}}}]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = f.RunPlugin(ctx, p, "-n", ns, "exec", "-f", unknown, "-t", "deploy/web", "--", "true")
	if err == nil || !strings.Contains(out, `unknown database type "oracle": use pg, mysql or mariadb`) {
		t.Errorf("an unknown engine: want a clear error (%v):\n%s", err, out)
	}
	branchesGone("nothing left by branches that could not be made")
}
