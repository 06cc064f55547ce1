package dbbranch

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// MySQL and MariaDB branches: the same protocol and tools under two sets of names. A branch
// runs whichever its image has: MariaDB's (mariadbd, mariadb-install-db, mariadb-dump,
// mariadb) or MySQL's (mysqld --initialize-insecure, mysqldump, mysql).

// MyTools are the programs of the image's flavour.
type MyTools struct {
	MariaDB bool
	// Server, Dump and Client are the programs' names.
	Server, Dump, Client string
}

// MyToolsFor picks the flavour by the programs the image has (has says whether one is on PATH):
// MariaDB's names first, as MariaDB also ships the mysql* ones as links.
func MyToolsFor(has func(string) bool) (MyTools, error) {
	switch {
	case has("mariadbd") && has("mariadb-install-db"):
		return MyTools{MariaDB: true, Server: "mariadbd", Dump: "mariadb-dump", Client: "mariadb"}, nil
	case has("mysqld") && has("mysql_install_db") && has("mysqldump"):
		// MariaDB before 10.5 (no mariadb* names yet).
		return MyTools{MariaDB: true, Server: "mysqld", Dump: "mysqldump", Client: "mysql"}, nil
	case has("mysqld") && has("mysqldump"):
		return MyTools{Server: "mysqld", Dump: "mysqldump", Client: "mysql"}, nil
	}
	return MyTools{}, fmt.Errorf("the branch's image has neither MariaDB's programs (mariadbd, mariadb-install-db, mariadb-dump) nor MySQL's (mysqld, mysqldump): set the engine's image (the controller's --db-branch-image) to the official mysql or mariadb one")
}

// Files of a MySQL branch in its Layout's Run directory.
const (
	mySocket    = "mysqld.sock"
	myBranchCnf = "branch.cnf" // the branch's own client options: root over the socket
	mySourceCnf = "source.cnf" // the source's: address, user, password (never in arguments)
)

// MyInit makes the branch's data directory with a passwordless root reachable on its socket
// only (the server has no network while it is seeded).
func MyInit(t MyTools, l Layout) Cmd {
	if t.MariaDB {
		install := "mariadb-install-db"
		if t.Server == "mysqld" {
			install = "mysql_install_db"
		}
		// --force: no host name lookup (a pod's name may not resolve), IP addresses only.
		return Cmd{Args: []string{install, "--no-defaults", "--datadir=" + l.Data, "--auth-root-authentication-method=normal",
			"--skip-test-db", "--skip-name-resolve", "--force"}}
	}
	return Cmd{Args: []string{t.Server, "--no-defaults", "--initialize-insecure", "--datadir=" + l.Data}}
}

// MyServer runs the branch's server: on its socket only while it is seeded (listen false), on
// every address and port afterwards. Durability is traded for speed, as for PostgreSQL: a
// branch lives as long as its pod.
func MyServer(t MyTools, l Layout, port int, listen bool) Cmd {
	args := []string{t.Server, "--no-defaults", "--datadir=" + l.Data, "--socket=" + l.Run + "/" + mySocket,
		"--pid-file=" + l.Run + "/mysqld.pid", "--tmpdir=" + l.Run, "--skip-log-bin", "--skip-name-resolve",
		"--innodb-flush-log-at-trx-commit=0", "--innodb-buffer-pool-size=64M"}
	if !t.MariaDB {
		args = append(args, "--mysqlx=OFF")
	}
	if listen {
		args = append(args, "--bind-address=*", "--port="+strconv.Itoa(port))
	} else {
		args = append(args, "--skip-networking")
	}
	return Cmd{Args: args}
}

// MyCnf is an option file of the [client] group with opts (in order; values quoted).
func MyCnf(opts [][2]string) (string, error) {
	var b strings.Builder
	b.WriteString("[client]\n")
	for _, o := range opts {
		if strings.ContainsAny(o[1], "\n\r\x00") {
			return "", fmt.Errorf("the source's %s holds a line break", o[0])
		}
		v := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(o[1])
		fmt.Fprintf(&b, "%s=\"%s\"\n", o[0], v)
	}
	return b.String(), nil
}

// MyBranchCnf is the branch's client options: root on the socket.
func MyBranchCnf(l Layout) (string, error) {
	return MyCnf([][2]string{{"user", "root"}, {"socket", l.Run + "/" + mySocket}})
}

// MySourceCnf is the source's client options. A source without TLS, or with a certificate
// no CA here signed (the common case inside a cluster), is reached as the target reaches it:
// MariaDB 11.4's clients would refuse it by default.
func MySourceCnf(src Conn) (string, error) {
	opts := [][2]string{{"host", src.Host}, {"port", strconv.Itoa(src.Port)}, {"user", src.User}, {"loose-connect-timeout", "10"}}
	if src.Password != "" {
		opts = append(opts, [2]string{"password", src.Password})
	}
	cnf, err := MyCnf(opts)
	if err != nil {
		return "", err
	}
	return cnf + "loose-disable-ssl-verify-server-cert\n", nil
}

// QuoteMyIdent quotes a name for MySQL (a database's or a table's).
func QuoteMyIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

// quoteMyString is a MySQL string literal.
func quoteMyString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`).Replace(s) + "'"
}

// MySetupSQL makes the source's user (from any address, with its password and every privilege)
// and database on the branch, so the local command's own credentials work there. MariaDB's
// anonymous local user would take the place of any other user connecting from the branch's
// own pod: it goes.
func MySetupSQL(src Conn) string {
	u := quoteMyString(src.User) + "@'%'"
	return strings.Join([]string{
		"DROP USER IF EXISTS ''@'localhost'",
		"CREATE USER IF NOT EXISTS " + u + " IDENTIFIED BY " + quoteMyString(src.Password),
		"ALTER USER " + u + " IDENTIFIED BY " + quoteMyString(src.Password),
		"GRANT ALL PRIVILEGES ON *.* TO " + u + " WITH GRANT OPTION",
		"CREATE DATABASE IF NOT EXISTS " + QuoteMyIdent(src.Database),
	}, ";\n") + ";\n"
}

// MySeed is the steps that fill the branch's database as copy says, as PGSeed does: the
// engine's dump of the schema (every table's, or only those listed), of everything (All), and of
// the rows each listed table's filter selects (the dump turns foreign-key checks off while it
// loads, so a kept row may reference one left out). Each dump is one consistent snapshot of
// the source, taken without locking its tables.
func MySeed(t MyTools, l Layout, src Conn, cp mirrordv1alpha1.DBCopy) []Step {
	client := &Cmd{Args: []string{t.Client, "--defaults-extra-file=" + l.Run + "/" + myBranchCnf, src.Database}}
	dump := func(what string, extra []string, tables ...string) Step {
		args := []string{t.Dump, "--defaults-extra-file=" + l.Run + "/" + mySourceCnf, "--single-transaction", "--skip-lock-tables", "--no-tablespaces"}
		if !t.MariaDB {
			// No GTID statements (the branch has no binary log), and no column statistics
			// (a MariaDB source has none to dump).
			args = append(args, "--set-gtid-purged=OFF", "--column-statistics=0")
		}
		args = append(append(append(args, extra...), src.Database), tables...)
		return Step{What: what, From: &Cmd{Args: args}, To: client}
	}
	tables := slices.Sorted(maps.Keys(cp.Tables))
	var steps []Step
	switch cp.Mode {
	case mirrordv1alpha1.DBCopyAll:
		return []Step{dump("copy the schema and every row", []string{"--routines", "--triggers"})}
	case mirrordv1alpha1.DBCopySchema:
		steps = append(steps, dump("copy the schema", []string{"--no-data", "--routines", "--triggers"}))
	default:
		if len(tables) > 0 {
			steps = append(steps, dump("copy the listed tables' schema", []string{"--no-data", "--triggers"}, tables...))
		}
	}
	for _, name := range tables {
		what := "copy the rows of " + name
		extra := []string{"--no-create-info", "--skip-triggers"}
		if f := cp.Tables[name].Filter; f != "" {
			extra = append(extra, "--where="+f)
			what += " where " + f
		}
		steps = append(steps, dump(what, extra, name))
	}
	return steps
}
