// Package dbbranch is what runs inside a database branch's pod and what the CLI does with a
// branch's endpoint: where the source database is (from the variables the controller gives
// the branch's container, copied from the target's pod spec), the engine's own commands that
// make and seed the branch, and the local command's connection rewritten to the branch.
// Decisions are pure functions; serve.go runs them.
package dbbranch

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// The variables the controller sets in a branch's container: the source's connection, as a
// URL or in parts ($(VAR) references to the target's own variables, literals, or Secret
// keys), and the branch's spec.
const (
	EnvURL      = "MIRRORD_DB_URL"
	EnvHost     = "MIRRORD_DB_HOST"
	EnvPort     = "MIRRORD_DB_PORT"
	EnvUser     = "MIRRORD_DB_USER"
	EnvPassword = "MIRRORD_DB_PASSWORD"
	EnvDatabase = "MIRRORD_DB_DATABASE"
	EnvBranch   = "MIRRORD_DB_BRANCH"
)

// Conn is a database connection's parts.
type Conn struct {
	Host, User, Password, Database string
	Port                           int
	// Params are the URL's query (sslmode, ...), kept for the source's connection.
	Params url.Values
}

// DefaultPort is each engine's.
func DefaultPort(e mirrordv1alpha1.DBEngine) int {
	if e == mirrordv1alpha1.DBEnginePostgreSQL {
		return 5432
	}
	return 3306
}

// schemes are the URL schemes each engine's clients accept.
var schemes = map[mirrordv1alpha1.DBEngine][]string{
	mirrordv1alpha1.DBEnginePostgreSQL: {"postgres", "postgresql"},
	mirrordv1alpha1.DBEngineMySQL:      {"mysql", "mysql2", "mysqlx"},
	mirrordv1alpha1.DBEngineMariaDB:    {"mysql", "mariadb", "mysql2"},
}

// ParseURL reads a connection URL of engine e (postgres://user:pass@host:5432/db?sslmode=x).
// Its errors never repeat the URL: it holds a password.
func ParseURL(e mirrordv1alpha1.DBEngine, raw string) (Conn, error) {
	var c Conn
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return c, fmt.Errorf("the source's connection URL is not a URL like %s://USER:PASSWORD@HOST:PORT/DATABASE", schemes[e][0])
	}
	if !slices.Contains(schemes[e], strings.ToLower(u.Scheme)) {
		return c, fmt.Errorf("the source's connection URL has scheme %q: a %s branch takes %s", u.Scheme, e, strings.Join(schemes[e], ", "))
	}
	c.Host, c.Port = u.Hostname(), DefaultPort(e)
	if p := u.Port(); p != "" {
		if c.Port, err = strconv.Atoi(p); err != nil || c.Port < 1 || c.Port > 65535 {
			return c, fmt.Errorf("the source's connection URL has port %q", p)
		}
	}
	if u.User != nil {
		c.User = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	c.Database = strings.TrimPrefix(u.Path, "/")
	c.Params = u.Query()
	return c, nil
}

// FromParts reads a connection given in parts; empty parts are left for defaults.
func FromParts(e mirrordv1alpha1.DBEngine, host, port, user, password, database string) (Conn, error) {
	c := Conn{Host: strings.TrimSpace(host), User: user, Password: password, Database: database, Port: DefaultPort(e)}
	if c.Host == "" {
		return c, fmt.Errorf("the source's host is empty")
	}
	if port = strings.TrimSpace(port); port != "" {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return c, fmt.Errorf("the source's port %q is not a port", port)
		}
		c.Port = p
	}
	return c, nil
}

// Address is host:port.
func (c Conn) Address() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// Source is the source's connection from the branch container's environment (getenv), with
// database (the spec's) where the connection names none.
func Source(e mirrordv1alpha1.DBEngine, database string, getenv func(string) string) (Conn, error) {
	var c Conn
	var err error
	if raw := getenv(EnvURL); raw != "" {
		c, err = ParseURL(e, raw)
	} else {
		c, err = FromParts(e, getenv(EnvHost), getenv(EnvPort), getenv(EnvUser), getenv(EnvPassword), getenv(EnvDatabase))
	}
	if err != nil {
		return c, err
	}
	if c.Database == "" {
		c.Database = database
	}
	if c.Database == "" {
		return c, fmt.Errorf("the source's connection names no database: set the branch's name (mirrord's feature.db_branches[].name)")
	}
	if c.User == "" {
		c.User = map[bool]string{true: "postgres", false: "root"}[e == mirrordv1alpha1.DBEnginePostgreSQL]
	}
	return c, nil
}

// RewriteURL is the local command's URL pointed at the branch: the host and port replaced,
// everything else (user, password, database, parameters) as it was.
func RewriteURL(raw, host string, port int32) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("not a URL like SCHEME://USER:PASSWORD@HOST:PORT/DATABASE")
	}
	u.Host = net.JoinHostPort(host, strconv.Itoa(int(port)))
	return u.String(), nil
}
