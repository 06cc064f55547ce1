package config

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// readBranches reads a feature.db_branches value as the loader does, without the refusal
// that stands until this version makes branches.
func readBranches(t *testing.T, list string) (*File, error) {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(list))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	f := &File{}
	return f, f.readDBBranches(node{path: "feature.db_branches", v: v})
}

func TestDBBranches(t *testing.T) {
	urlEnv := mirrordv1alpha1.DBConnection{URL: &mirrordv1alpha1.DBValueSource{Variable: "DATABASE_URL"}}
	base := func(engine mirrordv1alpha1.DBEngine, c mirrordv1alpha1.DBConnection) mirrordv1alpha1.MirrordDBBranchSpec {
		return mirrordv1alpha1.MirrordDBBranchSpec{Engine: engine, Connection: c, TTLSeconds: 300, CreationTimeoutSeconds: 60,
			Copy: mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopyEmpty}}
	}
	for name, tc := range map[string]struct {
		in       string
		want     []mirrordv1alpha1.MirrordDBBranchSpec
		warnings []string
		errKey   string
		errMsg   string
	}{
		"mirrord's docs: a URL from the target's env": {
			in:   `[{"type": "pg", "connection": {"url": {"type": "env", "variable": "DATABASE_URL"}}}]`,
			want: []mirrordv1alpha1.MirrordDBBranchSpec{base(mirrordv1alpha1.DBEnginePostgreSQL, urlEnv)},
		},
		"the flat URL form, every shared key": {
			in: `[{"type": "mysql", "id": "shop-dev", "name": "shop", "version": "8-0", "ttl_mins": 10, "creation_timeout_secs": 120,
				"connection": {"type": "env_from", "url": "DB_URL"}, "copy": {"mode": "schema", "tables": {"users": {"filter": "id < 10"}, "orders": {}}}}]`,
			want: []mirrordv1alpha1.MirrordDBBranchSpec{{ID: "shop-dev", Engine: mirrordv1alpha1.DBEngineMySQL, Database: "shop", Version: "8-0",
				TTLSeconds: 600, CreationTimeoutSeconds: 120,
				Connection: mirrordv1alpha1.DBConnection{URL: &mirrordv1alpha1.DBValueSource{Variable: "DB_URL", FromEnvFrom: true}},
				Copy:       mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopySchema, Tables: map[string]mirrordv1alpha1.DBTableCopy{"users": {Filter: "id < 10"}, "orders": {}}}}},
		},
		"params, a literal and a Secret": {
			in: `[{"type": "mariadb", "copy": {"mode": "all"}, "connection": {"type": "env", "params": {"host": "DB_HOST", "port": ["DB_PORT"],
				"user": {"variable": "DB_USER", "value": "app"}, "password": {"secret": "db", "key": "password", "env_var_name": "DB_PASSWORD"}}}}]`,
			want: []mirrordv1alpha1.MirrordDBBranchSpec{func() mirrordv1alpha1.MirrordDBBranchSpec {
				b := base(mirrordv1alpha1.DBEngineMariaDB, mirrordv1alpha1.DBConnection{Params: &mirrordv1alpha1.DBConnectionParams{
					Host:     mirrordv1alpha1.DBValueSource{Variable: "DB_HOST"},
					Port:     &mirrordv1alpha1.DBValueSource{Variable: "DB_PORT"},
					User:     &mirrordv1alpha1.DBValueSource{Variable: "DB_USER", Value: "app"},
					Password: &mirrordv1alpha1.DBValueSource{Secret: &mirrordv1alpha1.DBSecretKey{Name: "db", Key: "password", EnvVarName: "DB_PASSWORD"}},
				}})
				b.Copy.Mode = mirrordv1alpha1.DBCopyAll
				return b
			}()},
		},
		"a URL in a Secret": {
			in: `[{"type": "pg", "connection": {"url": {"type": "secret", "name": "pg", "key": "url"}}}]`,
			want: []mirrordv1alpha1.MirrordDBBranchSpec{base(mirrordv1alpha1.DBEnginePostgreSQL,
				mirrordv1alpha1.DBConnection{URL: &mirrordv1alpha1.DBValueSource{Secret: &mirrordv1alpha1.DBSecretKey{Name: "pg", Key: "url"}}})},
		},
		"keys that do not apply: warnings": {
			in: `[{"type": "pg", "image": "my/pg:16", "ttl_secs": 3600, "connection": {"url": "DATABASE_URL"}, "copy": {"mode": "schema", "dump_args": ["--no-owner"]}}]`,
			want: []mirrordv1alpha1.MirrordDBBranchSpec{func() mirrordv1alpha1.MirrordDBBranchSpec {
				b := base(mirrordv1alpha1.DBEnginePostgreSQL, urlEnv)
				b.TTLSeconds = 900
				b.Copy.Mode = mirrordv1alpha1.DBCopySchema
				return b
			}()},
			warnings: []string{"feature.db_branches[0].image ignored", "3600 seconds is above the 15-minute cap", "feature.db_branches[0].copy.dump_args ignored"},
		},
		"an engine mirrord has and this does not yet": {in: `[{"type": "mongodb", "connection": {"url": "MONGO_URL"}}]`,
			errKey: "feature.db_branches[0].type", errMsg: "mongodb branches are not supported yet: kubectl-mirrord branches pg, mysql and mariadb"},
		"an unknown engine":   {in: `[{"type": "oracle"}]`, errKey: "feature.db_branches[0].type", errMsg: `unknown database type "oracle"`},
		"no type":             {in: `[{"connection": {"url": "X"}}]`, errKey: "feature.db_branches[0]", errMsg: "type is required"},
		"no connection":       {in: `[{"type": "pg"}]`, errKey: "feature.db_branches[0].connection", errMsg: "required"},
		"url and params":      {in: `[{"type": "pg", "connection": {"url": "A", "params": {"host": "H"}}}]`, errKey: "feature.db_branches[0].connection", errMsg: "exactly one of url"},
		"params without host": {in: `[{"type": "pg", "connection": {"params": {"port": "P"}}}]`, errKey: "feature.db_branches[0].connection.params.host", errMsg: "required"},
		"both TTLs":           {in: `[{"type": "pg", "ttl_secs": 1, "ttl_mins": 1, "connection": {"url": "A"}}]`, errKey: "feature.db_branches[0].ttl_mins", errMsg: "cannot both"},
		"tables with all":     {in: `[{"type": "pg", "connection": {"url": "A"}, "copy": {"mode": "all", "tables": {"t": {}}}}]`, errKey: "feature.db_branches[0].copy.tables", errMsg: "empty and schema modes"},
		"a bad copy mode":     {in: `[{"type": "pg", "connection": {"url": "A"}, "copy": {"mode": "some"}}]`, errKey: "feature.db_branches[0].copy.mode", errMsg: "not one of empty, schema, all"},
		"a bad variable":      {in: `[{"type": "pg", "connection": {"url": "1=x"}}]`, errKey: "feature.db_branches[0].connection.url", errMsg: "not an environment variable's name"},
		"migrations":          {in: `[{"type": "pg", "connection": {"url": "A"}, "migrations": {"flavor": "flyway", "path": "m"}}]`, errKey: "feature.db_branches[0].migrations", errMsg: "not supported yet"},
		"one id twice":        {in: `[{"type": "pg", "id": "a", "connection": {"url": "A"}}, {"type": "pg", "id": "a", "connection": {"url": "B"}}]`, errKey: "feature.db_branches[1].id", errMsg: "also the id of feature.db_branches[0]"},
		"GCP secrets":         {in: `[{"type": "pg", "connection": {"url": {"type": "gcp_secret_manager", "secret_ref": "x"}}}]`, errKey: "feature.db_branches[0].connection.url.type", errMsg: "Google Secret Manager is not supported"},
		"two statements":      {in: `[{"type": "pg", "connection": {"url": "A"}, "copy": {"tables": {"t": {"filter": "1=1; DROP TABLE t"}}}}]`, errKey: "feature.db_branches[0].copy.tables.t.filter", errMsg: "one SQL condition"},
		"a typo":              {in: `[{"type": "pg", "connection": {"url": "A"}, "ttl_sec": 5}]`, errKey: "feature.db_branches[0].ttl_sec", errMsg: `did you mean "ttl_secs"`},
	} {
		f, err := readBranches(t, tc.in)
		if tc.errMsg != "" {
			var ce *Error
			if err == nil || !errors.As(err, &ce) || ce.Key != tc.errKey || !strings.Contains(ce.Msg, tc.errMsg) {
				t.Errorf("%s: %v, want %s: ...%s...", name, err, tc.errKey, tc.errMsg)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(f.DBBranches, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, f.DBBranches, tc.want)
		}
		if len(f.Warnings) != len(tc.warnings) {
			t.Errorf("%s: warnings %q, want %d", name, f.Warnings, len(tc.warnings))
		}
		for i, w := range tc.warnings {
			if i < len(f.Warnings) && !strings.Contains(f.Warnings[i], w) {
				t.Errorf("%s: warning %q, want ...%s...", name, f.Warnings[i], w)
			}
		}
	}
}
