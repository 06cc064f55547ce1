package dbbranch

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestSource(t *testing.T) {
	pg := mirrordv1alpha1.DBEnginePostgreSQL
	for name, tc := range map[string]struct {
		env      map[string]string
		engine   mirrordv1alpha1.DBEngine
		database string
		want     Conn
		wantErr  string
	}{
		"a URL": {env: map[string]string{EnvURL: "postgresql://app:p%40ss@db.shop.svc:6432/shop?sslmode=require"}, engine: pg,
			want: Conn{Host: "db.shop.svc", Port: 6432, User: "app", Password: "p@ss", Database: "shop"}},
		"a URL without port or user": {env: map[string]string{EnvURL: "postgres://db/shop"}, engine: pg,
			want: Conn{Host: "db", Port: 5432, User: "postgres", Database: "shop"}},
		"parts, the database from the spec": {env: map[string]string{EnvHost: "db", EnvPort: "3307", EnvUser: "u", EnvPassword: "p"},
			engine: mirrordv1alpha1.DBEngineMySQL, database: "shop", want: Conn{Host: "db", Port: 3307, User: "u", Password: "p", Database: "shop"}},
		"another engine's URL":                 {env: map[string]string{EnvURL: "mysql://u:p@db/shop"}, engine: pg, wantErr: `scheme "mysql": a PostgreSQL branch takes postgres, postgresql`},
		"not a URL, the password not repeated": {env: map[string]string{EnvURL: "app:s3cret"}, engine: pg, wantErr: "is not a URL like postgres://"},
		"no database":                          {env: map[string]string{EnvURL: "postgres://u@db"}, engine: pg, wantErr: "names no database"},
		"no host":                              {env: map[string]string{EnvPort: "5432"}, engine: pg, wantErr: "host is empty"},
		"a bad port":                           {env: map[string]string{EnvHost: "db", EnvPort: "x"}, engine: pg, wantErr: `port "x"`},
	} {
		got, err := Source(tc.engine, tc.database, func(k string) string { return tc.env[k] })
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%s: %v, want %q (and no password)", name, err, tc.wantErr)
			}
			continue
		}
		got.Params = nil
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v %v, want %+v", name, got, err, tc.want)
		}
	}
}

func TestRewriteURL(t *testing.T) {
	got, err := RewriteURL("postgres://app:p%40ss@db.shop.svc:5432/shop?sslmode=require", "mirrord-db-x.shop.svc", 5432)
	if err != nil || got != "postgres://app:p%40ss@mirrord-db-x.shop.svc:5432/shop?sslmode=require" {
		t.Errorf("RewriteURL: %q %v", got, err)
	}
	if _, err := RewriteURL("not a url", "h", 1); err == nil {
		t.Error("RewriteURL of no URL: no error")
	}
}

func TestPGSeed(t *testing.T) {
	l := Layout{Data: "/w/data", Run: "/w/run"}
	src := Conn{Host: "db", Port: 5432, User: "app", Password: "pw", Database: "shop"}
	whats := func(steps []Step) []string {
		var out []string
		for _, s := range steps {
			out = append(out, s.What)
		}
		return out
	}
	steps := PGSeed(l, 5432, src, mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopyEmpty, Tables: map[string]mirrordv1alpha1.DBTableCopy{
		"public.users": {Filter: "id < 3"}, `we"ird`: {}}})
	want := []string{"create database shop", "copy the listed tables' schema", "copy the rows of public.users where id < 3", `copy the rows of we"ird`}
	if !slices.Equal(whats(steps), want) {
		t.Fatalf("steps %q, want %q", whats(steps), want)
	}
	if !slices.Contains(steps[1].From.Args, `--table="public"."users"`) || !slices.Contains(steps[1].From.Args, `--table="we""ird"`) {
		t.Errorf("schema dump args %q: want each listed table, quoted", steps[1].From.Args)
	}
	if got := steps[2].From.Args[len(steps[2].From.Args)-1]; got != `COPY (SELECT * FROM "public"."users" WHERE (id < 3)) TO STDOUT` {
		t.Errorf("filtered copy: %q", got)
	}
	for _, s := range steps[1:] {
		if slices.ContainsFunc(s.From.Args, func(a string) bool { return strings.Contains(a, "pw") }) ||
			!slices.Contains(s.From.Env, "PGPASSWORD=pw") || !slices.Contains(s.From.Env, "PGOPTIONS=-c default_transaction_read_only=on") {
			t.Errorf("%s: the password belongs in the environment and the source is read-only: %q %q", s.What, s.From.Args, s.From.Env)
		}
	}
	if got := whats(PGSeed(l, 5432, Conn{User: "postgres", Database: "postgres"}, mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopyAll})); !slices.Equal(got, []string{"copy the schema and every row"}) {
		t.Errorf("All of database postgres: %q", got)
	}
	if err := ValidFilter("id < 3; DROP TABLE users"); err == nil {
		t.Error("a filter with ';': no error")
	}
}

func TestRewrite(t *testing.T) {
	ep := mirrordv1alpha1.DBEndpoint{Host: "mirrord-db-1.shop.svc", Port: 5432, Database: "shop"}
	env := map[string]string{
		"DATABASE_URL": "postgres://app:pw@db.shop.svc:5432/shop?sslmode=disable",
		"DB_HOST":      "mysql.shop.svc", "DB_PORT": "3306", "DB_USER": "u", "OTHER": "x",
	}
	notes := Rewrite(env, []Ready{
		{Name: "a", Endpoint: ep, Spec: mirrordv1alpha1.MirrordDBBranchSpec{Connection: mirrordv1alpha1.DBConnection{URL: &mirrordv1alpha1.DBValueSource{Variable: "DATABASE_URL"}}}},
		{Name: "b", Endpoint: mirrordv1alpha1.DBEndpoint{Host: "mirrord-db-2.shop.svc", Port: 3306}, Spec: mirrordv1alpha1.MirrordDBBranchSpec{Connection: mirrordv1alpha1.DBConnection{Params: &mirrordv1alpha1.DBConnectionParams{
			Host: mirrordv1alpha1.DBValueSource{Variable: "DB_HOST"}, Port: &mirrordv1alpha1.DBValueSource{Variable: "DB_PORT"}, User: &mirrordv1alpha1.DBValueSource{Variable: "DB_USER"}}}}},
		{Name: "c", Endpoint: ep, Spec: mirrordv1alpha1.MirrordDBBranchSpec{Connection: mirrordv1alpha1.DBConnection{URL: &mirrordv1alpha1.DBValueSource{Variable: "MISSING_URL"}}}},
	})
	want := map[string]string{
		"DATABASE_URL": "postgres://app:pw@mirrord-db-1.shop.svc:5432/shop?sslmode=disable",
		"DB_HOST":      "mirrord-db-2.shop.svc", "DB_PORT": "3306", "DB_USER": "u", "OTHER": "x",
	}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("env %v, want %v", env, want)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "no MISSING_URL") {
		t.Errorf("notes %q, want one about MISSING_URL", notes)
	}
}

// TestPGHBA: sessions reach a branch from the pod network, which initdb's own pg_hba.conf
// (loopback only) refuses: seen on the rig as "no pg_hba.conf entry for host 10.241.0.21".
func TestPGHBA(t *testing.T) {
	if got := PGHBA(Conn{Password: "pw"}); got != "local all all trust\nhost all all all scram-sha-256\n" {
		t.Errorf("with a password: %q", got)
	}
	if got := PGHBA(Conn{}); !strings.Contains(got, "host all all all trust\n") {
		t.Errorf("without one: %q", got)
	}
}
