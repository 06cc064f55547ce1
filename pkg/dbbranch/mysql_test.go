package dbbranch

import (
	"slices"
	"strings"
	"testing"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

func TestMyToolsFor(t *testing.T) {
	for name, tc := range map[string]struct {
		has     []string
		want    MyTools
		wantErr bool
	}{
		"MariaDB 10.5+ (with the mysql links)": {has: []string{"mariadbd", "mariadb-install-db", "mariadb-dump", "mariadb", "mysqld", "mysqldump", "mysql"},
			want: MyTools{MariaDB: true, Server: "mariadbd", Dump: "mariadb-dump", Client: "mariadb"}},
		"MariaDB 10.4":   {has: []string{"mysqld", "mysql_install_db", "mysqldump", "mysql"}, want: MyTools{MariaDB: true, Server: "mysqld", Dump: "mysqldump", Client: "mysql"}},
		"MySQL 8":        {has: []string{"mysqld", "mysqldump", "mysql"}, want: MyTools{Server: "mysqld", Dump: "mysqldump", Client: "mysql"}},
		"a postgres one": {has: []string{"postgres", "pg_dump"}, wantErr: true},
	} {
		got, err := MyToolsFor(func(p string) bool { return slices.Contains(tc.has, p) })
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v (error %v)", name, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestMySeed(t *testing.T) {
	l := Layout{Data: "/w/data", Run: "/w/run"}
	src := Conn{Host: "db", Port: 3306, User: "app", Password: "pw", Database: "shop"}
	maria := MyTools{MariaDB: true, Server: "mariadbd", Dump: "mariadb-dump", Client: "mariadb"}
	mysql := MyTools{Server: "mysqld", Dump: "mysqldump", Client: "mysql"}
	filters := map[string]mirrordv1alpha1.DBTableCopy{"users": {Filter: "id <= 3"}, "orders": {}}
	for name, tc := range map[string]struct {
		tools MyTools
		cp    mirrordv1alpha1.DBCopy
		want  []string // each step: what, and its dump's arguments after the common ones
	}{
		"schema with filters": {tools: maria, cp: mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopySchema, Tables: filters}, want: []string{
			"copy the schema: --no-data --routines --triggers shop",
			"copy the rows of orders: --no-create-info --skip-triggers shop orders",
			"copy the rows of users where id <= 3: --no-create-info --skip-triggers --where=id <= 3 shop users",
		}},
		"empty with tables": {tools: maria, cp: mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopyEmpty, Tables: filters}, want: []string{
			"copy the listed tables' schema: --no-data --triggers shop orders users",
			"copy the rows of orders: --no-create-info --skip-triggers shop orders",
			"copy the rows of users where id <= 3: --no-create-info --skip-triggers --where=id <= 3 shop users",
		}},
		"empty":      {tools: maria, cp: mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopyEmpty}},
		"all":        {tools: maria, cp: mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopyAll}, want: []string{"copy the schema and every row: --routines --triggers shop"}},
		"all, MySQL": {tools: mysql, cp: mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopyAll}, want: []string{"copy the schema and every row: --set-gtid-purged=OFF --column-statistics=0 --routines --triggers shop"}},
	} {
		var got []string
		for _, s := range MySeed(tc.tools, l, src, tc.cp) {
			args := s.From.Args
			if args[0] != tc.tools.Dump || args[1] != "--defaults-extra-file=/w/run/source.cnf" || !slices.Contains(args, "--single-transaction") {
				t.Errorf("%s: dump %q", name, args)
			}
			if !slices.Equal(s.To.Args, []string{tc.tools.Client, "--defaults-extra-file=/w/run/branch.cnf", "shop"}) {
				t.Errorf("%s: load %q", name, s.To.Args)
			}
			if slices.ContainsFunc(append(slices.Clone(args), s.To.Args...), func(a string) bool { return strings.Contains(a, "pw") }) {
				t.Errorf("%s: a password in arguments: %q", name, args)
			}
			got = append(got, s.What+": "+strings.Join(args[5:], " "))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, tc.want)
		}
	}
}

func TestMyCnfAndSQL(t *testing.T) {
	cnf, err := MySourceCnf(Conn{Host: "db.shop.svc", Port: 3307, User: "app", Password: `p"w\x`, Database: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[client]\n", `host="db.shop.svc"`, `port="3307"`, `user="app"`, `password="p\"w\\x"`, "loose-disable-ssl-verify-server-cert"} {
		if !strings.Contains(cnf, want) {
			t.Errorf("source options lack %s:\n%s", want, cnf)
		}
	}
	if _, err := MySourceCnf(Conn{Host: "db", User: "app", Password: "a\nb"}); err == nil {
		t.Error("a password with a line break: want an error (it would end the option)")
	}
	sql := MySetupSQL(Conn{User: "o'neil", Password: `it's\`, Database: "sh`op"})
	for _, want := range []string{
		`CREATE USER IF NOT EXISTS 'o\'neil'@'%' IDENTIFIED BY 'it\'s\\'`,
		`ALTER USER 'o\'neil'@'%' IDENTIFIED BY 'it\'s\\'`,
		`GRANT ALL PRIVILEGES ON *.* TO 'o\'neil'@'%' WITH GRANT OPTION`,
		"CREATE DATABASE IF NOT EXISTS `sh``op`",
		`DROP USER IF EXISTS ''@'localhost'`,
	} {
		if !strings.Contains(sql, want) {
			t.Errorf("setup SQL lacks %s:\n%s", want, sql)
		}
	}
	server := strings.Join(MyServer(MyTools{Server: "mysqld"}, Layout{Data: "/d", Run: "/r"}, 3306, false).Args, " ")
	if !strings.Contains(server, "--skip-networking") || strings.Contains(server, "--port") || !strings.Contains(server, "--mysqlx=OFF") {
		t.Errorf("seeding server: %s", server)
	}
	server = strings.Join(MyServer(MyTools{MariaDB: true, Server: "mariadbd"}, Layout{Data: "/d", Run: "/r"}, 3306, true).Args, " ")
	if strings.Contains(server, "--skip-networking") || !strings.Contains(server, "--bind-address=* --port=3306") || strings.Contains(server, "mysqlx") {
		t.Errorf("serving server: %s", server)
	}
}
