package dbbranch

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// Cmd is one program run with its arguments and extra environment.
type Cmd struct {
	Args []string
	Env  []string
}

// Step is one thing the seeding does: a command, or a pipe from the source's side (From) to
// the branch's side (To).
type Step struct {
	// What says what the step does, for progress and errors.
	What     string
	From, To *Cmd
}

// Layout is where a branch keeps its files in its container.
type Layout struct {
	// Data is the engine's data directory (inside an emptyDir); Run holds its socket and the
	// password file.
	Data, Run string
}

// PGInit is initdb for a branch whose superuser is the source's user and password, so the
// local command's own credentials work on the branch. Local (socket) connections are trusted:
// only the branch's own container reaches them.
func PGInit(l Layout, src Conn, pwfile string) Cmd {
	args := []string{"initdb", "-D", l.Data, "-U", src.User, "-E", "UTF8", "--locale=C", "--auth-local=trust", "--no-sync"}
	if src.Password == "" {
		args = append(args, "--auth-host=trust")
	} else {
		args = append(args, "--auth-host=scram-sha-256", "--pwfile="+pwfile)
	}
	return Cmd{Args: args}
}

// PGHBA is the branch's pg_hba.conf: its own socket trusted, and any address with the
// source's password (initdb's own allows loopback only, and sessions come from the pod
// network).
func PGHBA(src Conn) string {
	method := "scram-sha-256"
	if src.Password == "" {
		method = "trust"
	}
	return "local all all trust\nhost all all all " + method + "\n"
}

// PGServer runs the branch's server: on its socket only while it is seeded (listen false), on
// every address afterwards.
func PGServer(l Layout, port int, listen bool) Cmd {
	addrs := ""
	if listen {
		addrs = "*"
	}
	return Cmd{Args: []string{"postgres", "-D", l.Data, "-p", strconv.Itoa(port), "-c", "listen_addresses=" + addrs,
		"-c", "unix_socket_directories=" + l.Run, "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"}}
}

// sourceEnv is how every source command connects: the password in the environment, never in
// arguments; read-only transactions, so no filter can change the source; a bounded connect.
func sourceEnv(src Conn) []string {
	env := []string{"PGCONNECT_TIMEOUT=10", "PGOPTIONS=-c default_transaction_read_only=on", "PGAPPNAME=mirrord-db-branch"}
	if src.Password != "" {
		env = append(env, "PGPASSWORD="+src.Password)
	}
	if m := src.Params.Get("sslmode"); m != "" {
		env = append(env, "PGSSLMODE="+m)
	}
	return env
}

func sourceArgs(src Conn) []string {
	return []string{"-h", src.Host, "-p", strconv.Itoa(src.Port), "-U", src.User, "-d", src.Database}
}

func branchPsql(l Layout, port int, user, database string, sql ...string) *Cmd {
	args := []string{"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", l.Run, "-p", strconv.Itoa(port), "-U", user, "-d", database}
	for _, s := range sql {
		args = append(args, "-c", s)
	}
	return &Cmd{Args: args}
}

// QuoteIdent quotes a table's name for SQL: schema.table is two identifiers.
func QuoteIdent(name string) string {
	parts := strings.SplitN(name, ".", 2)
	for i, p := range parts {
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(parts, ".")
}

// PGSeed is the steps that make the branch's database and fill it as copy says: a schema
// dump (every table's, or only the tables listed), a whole dump (All), and the rows each listed
// table's filter selects, copied with the branch's foreign-key triggers off (a filter may
// keep a row whose referenced row it leaves out).
func PGSeed(l Layout, port int, src Conn, cp mirrordv1alpha1.DBCopy) []Step {
	var steps []Step
	if src.Database != "postgres" {
		steps = append(steps, Step{What: "create database " + src.Database,
			To: branchPsql(l, port, src.User, "postgres", "CREATE DATABASE "+QuoteIdent(src.Database))})
	}
	dump := func(what string, extra ...string) Step {
		args := append([]string{"pg_dump", "--no-owner", "--no-acl"}, extra...)
		args = append(args, sourceArgs(src)...)
		return Step{What: what, From: &Cmd{Args: args, Env: sourceEnv(src)}, To: branchPsql(l, port, src.User, src.Database)}
	}
	tables := slices.Sorted(maps.Keys(cp.Tables))
	switch cp.Mode {
	case mirrordv1alpha1.DBCopyAll:
		return append(steps, dump("copy the schema and every row"))
	case mirrordv1alpha1.DBCopySchema:
		steps = append(steps, dump("copy the schema", "--schema-only"))
	default:
		if len(tables) > 0 {
			var only []string
			for _, t := range tables {
				only = append(only, "--table="+QuoteIdent(t))
			}
			steps = append(steps, dump("copy the listed tables' schema", append([]string{"--schema-only"}, only...)...))
		}
	}
	for _, t := range tables {
		q := "SELECT * FROM " + QuoteIdent(t)
		what := "copy the rows of " + t
		if f := cp.Tables[t].Filter; f != "" {
			q += " WHERE (" + f + ")"
			what += " where " + f
		}
		steps = append(steps, Step{What: what,
			From: &Cmd{Args: append(append([]string{"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"}, sourceArgs(src)...), "-c", "COPY ("+q+") TO STDOUT"), Env: sourceEnv(src)},
			To:   branchPsql(l, port, src.User, src.Database, "SET session_replication_role = replica", "COPY "+QuoteIdent(t)+" FROM STDIN"),
		})
	}
	return steps
}

// ValidFilter refuses what a row filter may not hold: it goes into one SQL statement.
func ValidFilter(f string) error {
	if strings.ContainsAny(f, "\x00\r\n;") {
		return fmt.Errorf("a row filter is one SQL condition on one line, without ';'")
	}
	return nil
}
