package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/dbbranch"
)

// dbBranchesMade turns on sessions with database branches, once the installation makes them.
const dbBranchesMade = true

// DB branch limits, as mirrord's: a branch stays at most 15 minutes after its last session.
const (
	defaultBranchTTL     = 300
	maxBranchTTL         = 900
	defaultBranchTimeout = 60
)

// dbEngines are mirrord's branch types kubectl-mirrord makes, by the name configs use.
var dbEngines = map[string]mirrordv1alpha1.DBEngine{
	"pg":      mirrordv1alpha1.DBEnginePostgreSQL,
	"mysql":   mirrordv1alpha1.DBEngineMySQL,
	"mariadb": mirrordv1alpha1.DBEngineMariaDB,
}

// mirrordDBEngines are the other branch types mirrord knows: named, and refused for now.
var mirrordDBEngines = []string{"clickhouse", "cockroachdb", "dynamodb", "generic", "mongodb", "mssql", "redis", "spanner"}

// branchKeyWarnings are branch keys read and not applied, with why.
var branchKeyWarnings = map[string]string{
	"image":               "the installation's admin chooses each engine's image (set version to choose among its versions)",
	"profile":             "branch-config profiles are the operator's; this installation's admin configures the branch pods",
	"connection_settings": "settings for the source connection are not supported yet: the copy connects as the connection says",
	"query_params":        "the branch connection's parameters are kept from the source's URL (a branch serves no TLS)",
}

// branchKeysRefused are branch keys whose feature is not there yet.
var branchKeysRefused = map[string]string{
	"migrations": "migrations on a branch are not supported yet: run them from the command, against the branch",
	"iam_auth":   "IAM authentication to the source database is not supported yet: use a password (a Secret of the target's)",
}

// readDBBranches reads feature.db_branches, mirrord's list of database branches. The target and
// owner are the session's, set by the CLI; an id left out is the session's own.
func (f *File) readDBBranches(n node) error {
	items, err := n.list()
	if err != nil {
		return err
	}
	ids := map[string]string{}
	for _, item := range items {
		b, err := f.readDBBranch(item)
		if err != nil {
			return err
		}
		if b.ID != "" {
			if prev, ok := ids[b.ID]; ok {
				return item.child("id").errorf("%q is also the id of %s: each branch of a session has its own id", b.ID, prev)
			}
			ids[b.ID] = item.path
		}
		f.DBBranches = append(f.DBBranches, b)
	}
	return nil
}

func (f *File) readDBBranch(n node) (mirrordv1alpha1.MirrordDBBranchSpec, error) {
	var b mirrordv1alpha1.MirrordDBBranchSpec
	raw, ok := n.v.(map[string]any)
	if !ok {
		return b, n.errorf("expected a table of keys (type, connection, copy, ...), got %s", describe(n.v))
	}
	tn := n.child("type")
	tn.v = raw["type"]
	kind, err := tn.str()
	if err != nil {
		return b, n.errorf("type is required: pg, mysql or mariadb")
	}
	engine, ok := dbEngines[kind]
	if !ok {
		if slices.Contains(mirrordDBEngines, kind) {
			return b, tn.errorf("%s branches are not supported yet: kubectl-mirrord branches pg, mysql and mariadb databases", kind)
		}
		return b, tn.errorf("unknown database type %q: use pg, mysql or mariadb", kind)
	}
	b.Engine = engine
	allowed := []string{"type", "id", "name", "ttl_secs", "ttl_mins", "creation_timeout_secs", "version", "connection", "copy"}
	allowed = append(allowed, slices.Sorted(maps.Keys(branchKeyWarnings))...)
	allowed = append(allowed, slices.Sorted(maps.Keys(branchKeysRefused))...)
	m, err := n.object(allowed...)
	if err != nil {
		return b, err
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if why, ok := branchKeysRefused[k]; ok {
			return b, m[k].errorf("%s", why)
		}
		if why, ok := branchKeyWarnings[k]; ok {
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s ignored: %s", m[k].path, why))
		}
	}
	str := func(key string, max int, check func(string) []string) (string, error) {
		c, ok := m[key]
		if !ok {
			return "", nil
		}
		s, err := c.str()
		if err != nil {
			return "", err
		}
		if s == "" || len(s) > max {
			return "", c.errorf("use 1 to %d characters", max)
		}
		if check != nil {
			if errs := check(s); len(errs) > 0 {
				return "", c.errorf("%q: %s", s, strings.Join(errs, "; "))
			}
		}
		return s, nil
	}
	if b.ID, err = str("id", 253, nil); err != nil {
		return b, err
	}
	if b.Database, err = str("name", 63, nil); err != nil {
		return b, err
	}
	if b.Version, err = str("version", 63, validation.IsDNS1123Label); err != nil {
		return b, err
	}
	b.TTLSeconds = defaultBranchTTL
	secs, hasSecs := m["ttl_secs"]
	mins, hasMins := m["ttl_mins"]
	switch {
	case hasSecs && hasMins:
		return b, mins.errorf("ttl_secs and ttl_mins cannot both be set")
	case hasSecs || hasMins:
		c, unit := secs, int64(1)
		if hasMins {
			c, unit = mins, 60
		}
		v, err := c.integer(0, 1<<31)
		if err != nil {
			return b, err
		}
		ttl := v * unit
		if ttl > maxBranchTTL {
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s: %d seconds is above the 15-minute cap; the branch stays %d seconds after its last session", c.path, ttl, maxBranchTTL))
			ttl = maxBranchTTL
		}
		b.TTLSeconds = int32(ttl)
	}
	b.CreationTimeoutSeconds = defaultBranchTimeout
	if c, ok := m["creation_timeout_secs"]; ok {
		v, err := c.integer(1, 3600)
		if err != nil {
			return b, err
		}
		b.CreationTimeoutSeconds = int32(v)
	}
	c, ok := m["connection"]
	if !ok {
		return b, n.child("connection").errorf("required: where the target's connection to its database comes from, e.g. {\"url\": {\"type\": \"env\", \"variable\": \"DATABASE_URL\"}}")
	}
	if b.Connection, err = f.readDBConnection(c); err != nil {
		return b, err
	}
	b.Copy = mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopyEmpty}
	if c, ok := m["copy"]; ok {
		if b.Copy, err = f.readDBCopy(c); err != nil {
			return b, err
		}
	}
	return b, nil
}

// readDBConnection reads mirrord's three shapes: {"url": SOURCE}, {"type": T, "url": VAR}
// and {"type": T, "params": {...}}.
func (f *File) readDBConnection(n node) (mirrordv1alpha1.DBConnection, error) {
	var c mirrordv1alpha1.DBConnection
	m, err := n.object("type", "url", "params")
	if err != nil {
		return c, err
	}
	envFrom := false
	if t, ok := m["type"]; ok {
		kind, err := t.oneOf("env", "env_from")
		if err != nil {
			return c, err
		}
		envFrom = kind == "env_from"
	}
	u, hasURL := m["url"]
	p, hasParams := m["params"]
	switch {
	case hasURL == hasParams:
		return c, n.errorf("set exactly one of url (the variable holding the whole URL) or params (its parts)")
	case hasURL:
		if _, isObject := u.v.(map[string]any); isObject {
			if _, typed := m["type"]; typed {
				return c, u.errorf("with type beside url, url names the variable (\"url\": \"DATABASE_URL\"); or drop type and give {\"type\": \"env\", \"variable\": ...}")
			}
			src, err := readTargetSource(u)
			if err != nil {
				return c, err
			}
			c.URL = &src
			return c, nil
		}
		vars, err := u.strings("")
		if err != nil {
			return c, err
		}
		if len(vars) != 1 {
			return c, u.errorf("name one variable holding the URL (several are not supported yet)")
		}
		if err := envName(u, vars[0]); err != nil {
			return c, err
		}
		c.URL = &mirrordv1alpha1.DBValueSource{Variable: vars[0], FromEnvFrom: envFrom}
		return c, nil
	}
	pm, err := p.object("host", "port", "user", "password", "database", "sslmode")
	if err != nil {
		return c, err
	}
	params := &mirrordv1alpha1.DBConnectionParams{}
	if s, ok := pm["sslmode"]; ok {
		f.Warnings = append(f.Warnings, fmt.Sprintf("%s ignored: a branch serves no TLS; the command's variable keeps its value", s.path))
	}
	for key, dst := range map[string]**mirrordv1alpha1.DBValueSource{
		"port": &params.Port, "user": &params.User, "password": &params.Password, "database": &params.Database,
	} {
		if v, ok := pm[key]; ok {
			src, err := readParamSource(v, envFrom)
			if err != nil {
				return c, err
			}
			*dst = &src
		}
	}
	h, ok := pm["host"]
	if !ok {
		return c, p.child("host").errorf("required: the variable holding the database's host, which the branch replaces")
	}
	if params.Host, err = readParamSource(h, envFrom); err != nil {
		return c, err
	}
	c.Params = params
	return c, nil
}

// readTargetSource reads mirrord's {"type": "env"|"env_from"|"secret", ...}.
func readTargetSource(n node) (mirrordv1alpha1.DBValueSource, error) {
	var s mirrordv1alpha1.DBValueSource
	raw, _ := n.v.(map[string]any)
	tn := n.child("type")
	tn.v = raw["type"]
	kind, err := tn.oneOf("env", "env_from", "secret", "gcp_secret_manager")
	if err != nil {
		return s, err
	}
	switch kind {
	case "gcp_secret_manager":
		return s, tn.errorf("Google Secret Manager is not supported: use a Kubernetes Secret or the target's environment")
	case "secret":
		m, err := n.object("type", "name", "key", "env_var_name")
		if err != nil {
			return s, err
		}
		return readSecretKey(n, m, "name")
	}
	allowed := []string{"type", "variable", "container"}
	if kind == "env" {
		allowed = append(allowed, "value")
	}
	m, err := n.object(allowed...)
	if err != nil {
		return s, err
	}
	v, ok := m["variable"]
	if !ok {
		return s, n.child("variable").errorf("required: the target's variable holding the URL")
	}
	if s.Variable, err = v.str(); err != nil {
		return s, err
	}
	if err := envName(v, s.Variable); err != nil {
		return s, err
	}
	s.FromEnvFrom = kind == "env_from"
	if c, ok := m["container"]; ok {
		if s.Container, err = c.str(); err != nil {
			return s, err
		}
		if errs := validation.IsDNS1123Label(s.Container); len(errs) > 0 {
			return s, c.errorf("%q is not a container name: %s", s.Container, strings.Join(errs, "; "))
		}
	}
	if c, ok := m["value"]; ok {
		if s.Value, err = c.str(); err != nil {
			return s, err
		}
	}
	return s, nil
}

// readParamSource reads one of params' values: "VAR", {"variable": V, "value": X},
// {"secret": S, "key": K, "env_var_name": V}; a list of them takes the first.
func readParamSource(n node, envFrom bool) (mirrordv1alpha1.DBValueSource, error) {
	var s mirrordv1alpha1.DBValueSource
	if l, isList := n.v.([]any); isList {
		if len(l) != 1 {
			return s, n.errorf("name one source (several are not supported yet)")
		}
		items, _ := n.list()
		n = items[0]
	}
	switch v := n.v.(type) {
	case string:
		if err := envName(n, v); err != nil {
			return s, err
		}
		return mirrordv1alpha1.DBValueSource{Variable: v, FromEnvFrom: envFrom}, nil
	case map[string]any:
		if _, ok := v["secret"]; ok {
			m, err := n.object("secret", "key", "env_var_name")
			if err != nil {
				return s, err
			}
			return readSecretKey(n, m, "secret")
		}
		if _, ok := v["value_pattern"]; ok {
			return s, n.child("value_pattern").errorf("value patterns are not supported yet: name the variable, or give its value")
		}
		if _, ok := v["gcp_secret_manager"]; ok {
			return s, n.child("gcp_secret_manager").errorf("Google Secret Manager is not supported: use a Kubernetes Secret or the target's environment")
		}
		m, err := n.object("variable", "env_var_name", "value")
		if err != nil {
			return s, err
		}
		name, ok := m["variable"]
		if !ok {
			name, ok = m["env_var_name"]
		}
		if !ok {
			return s, n.child("variable").errorf("required: the variable this value is for")
		}
		if s.Variable, err = name.str(); err != nil {
			return s, err
		}
		if err := envName(name, s.Variable); err != nil {
			return s, err
		}
		if c, ok := m["value"]; ok {
			if s.Value, err = c.str(); err != nil {
				return s, err
			}
		}
		s.FromEnvFrom = envFrom
		return s, nil
	}
	return s, n.errorf("expected a variable's name, {\"variable\": ..., \"value\": ...} or {\"secret\": ..., \"key\": ...}, got %s", describe(n.v))
}

func readSecretKey(n node, m map[string]node, nameKey string) (mirrordv1alpha1.DBValueSource, error) {
	var s mirrordv1alpha1.DBValueSource
	k := &mirrordv1alpha1.DBSecretKey{}
	for key, dst := range map[string]*string{nameKey: &k.Name, "key": &k.Key, "env_var_name": &k.EnvVarName} {
		c, ok := m[key]
		if !ok {
			if key == "env_var_name" {
				continue
			}
			return s, n.child(key).errorf("required: the Secret's %s", map[string]string{nameKey: "name", "key": "key"}[key])
		}
		v, err := c.str()
		if err != nil {
			return s, err
		}
		*dst = v
	}
	if errs := validation.IsDNS1123Subdomain(k.Name); len(errs) > 0 {
		return s, n.child(nameKey).errorf("%q is not a Secret's name: %s", k.Name, strings.Join(errs, "; "))
	}
	if k.EnvVarName != "" {
		if err := envName(n.child("env_var_name"), k.EnvVarName); err != nil {
			return s, err
		}
	}
	s.Secret = k
	return s, nil
}

func envName(n node, v string) error {
	if errs := validation.IsEnvVarName(v); len(errs) > 0 || v == "" {
		return n.errorf("%q is not an environment variable's name", v)
	}
	return nil
}

// readDBCopy reads {"mode": "empty"|"schema"|"all", "tables": {NAME: {"filter": SQL}}}.
func (f *File) readDBCopy(n node) (mirrordv1alpha1.DBCopy, error) {
	var c mirrordv1alpha1.DBCopy
	m, err := n.object("mode", "tables", "dump_args", "collections")
	if err != nil {
		return c, err
	}
	mode := "empty"
	if md, ok := m["mode"]; ok {
		if mode, err = md.oneOf("empty", "schema", "all"); err != nil {
			return c, err
		}
	}
	c.Mode = map[string]mirrordv1alpha1.DBCopyMode{"empty": mirrordv1alpha1.DBCopyEmpty, "schema": mirrordv1alpha1.DBCopySchema, "all": mirrordv1alpha1.DBCopyAll}[mode]
	if d, ok := m["dump_args"]; ok {
		f.Warnings = append(f.Warnings, fmt.Sprintf("%s ignored: the branch's copy runs the engine's dump with the arguments the installation chose", d.path))
	}
	if col, ok := m["collections"]; ok {
		return c, col.errorf("collections are MongoDB's and DynamoDB's: a SQL branch lists tables")
	}
	t, ok := m["tables"]
	if !ok {
		return c, nil
	}
	if c.Mode == mirrordv1alpha1.DBCopyAll {
		return c, t.errorf("tables select rows in the empty and schema modes; all copies every table whole")
	}
	raw, isObject := t.v.(map[string]any)
	if !isObject {
		return c, t.errorf("expected a table of tables ({\"users\": {\"filter\": \"id < 100\"}}), got %s", describe(t.v))
	}
	if len(raw) > 256 {
		return c, t.errorf("%d tables: at most 256", len(raw))
	}
	c.Tables = map[string]mirrordv1alpha1.DBTableCopy{}
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		tn := t.child(name)
		tn.v = raw[name]
		if name == "" || len(name) > 127 {
			return c, tn.errorf("a table's name is 1 to 127 characters")
		}
		var tc mirrordv1alpha1.DBTableCopy
		if tn.v != nil {
			tm, err := tn.object("filter")
			if err != nil {
				return c, err
			}
			if fl, ok := tm["filter"]; ok {
				if tc.Filter, err = fl.str(); err != nil {
					return c, err
				}
				if len(tc.Filter) > 4096 {
					return c, fl.errorf("at most 4096 characters")
				}
				if err := dbbranch.ValidFilter(tc.Filter); err != nil {
					return c, fl.errorf("%v", err)
				}
			}
		}
		c.Tables[name] = tc
	}
	return c, nil
}
