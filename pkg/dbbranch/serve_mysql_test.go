package dbbranch

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// mariadb runs SQL as user app over TCP on loopback, as the local command would reach a
// branch (MariaDB's own client, batch output).
func mariadb(port int, database, sql string) (string, error) {
	cmd := exec.Command("mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", strconv.Itoa(port), "-u", "app", "--connect-timeout=3", "-N", "-B", "-e", sql, database)
	cmd.Env = []string{"MYSQL_PWD=s3 cr'et\\x"}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestServeMariaDB makes branches of a real MariaDB server (Debian's) with the program a
// branch's pod runs (`kubectl-mirrord db-branch serve`, as the mysql user): the schema of
// every table with the rows the filters select (a foreign key to a row left out included), the
// source's user and password (quotes and a backslash in it) working on the branch, writes that
// stay in the branch; a whole copy; an empty one; and a source that refuses the password, a
// clear error.
func TestServeMariaDB(t *testing.T) {
	if _, err := exec.LookPath("mariadbd"); err != nil {
		if _, err := os.Stat("/usr/sbin/mariadbd"); err != nil {
			t.Fatal("no MariaDB server (hack/install-deps.sh installs Debian's)")
		}
	}
	my := newRunAs(t, "mysql", "/usr/sbin:/usr/bin:/bin")
	dir, err := os.MkdirTemp("", "mirrord-db-branch-my-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "kubectl-mirrord")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/kubectl-mirrord").CombinedOutput(); err != nil {
		t.Fatalf("building kubectl-mirrord: %v\n%s", err, out)
	}
	// The source: database shop, user app with a password that needs quoting everywhere.
	src := filepath.Join(dir, "src")
	my.run(nil, "mariadb-install-db", "--no-defaults", "--datadir="+src, "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve")
	srcPort := freePort(t)
	my.background(nil, filepath.Join(dir, "src.log"), "mariadbd", "--no-defaults", "--datadir="+src, "--socket="+dir+"/src.sock",
		"--pid-file="+dir+"/src.pid", "--bind-address=127.0.0.1", "--port="+strconv.Itoa(srcPort), "--skip-log-bin", "--skip-name-resolve")
	root := func(sql string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, err := my.cmd(nil, "mariadb", "--no-defaults", "-S", dir+"/src.sock", "-u", "root", "-e", sql).CombinedOutput()
			if err == nil {
				return
			}
			if time.Now().After(deadline) || !strings.Contains(string(out), "Can't connect") {
				t.Fatalf("%s: %v: %s", sql, err, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	root(`DROP USER IF EXISTS ''@'localhost'; CREATE DATABASE shop; CREATE USER 'app'@'%' IDENTIFIED BY 's3 cr\'et\\x'; GRANT ALL ON shop.* TO 'app'@'%';
		USE shop;
		CREATE TABLE users (id int PRIMARY KEY, name varchar(20) NOT NULL) ENGINE=InnoDB;
		CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL, total decimal(10,2), FOREIGN KEY (user_id) REFERENCES users(id)) ENGINE=InnoDB;
		CREATE TABLE audit (at timestamp DEFAULT current_timestamp, what text);
		INSERT INTO users SELECT seq, concat('user', seq) FROM seq_1_to_20;
		INSERT INTO orders SELECT seq, 1 + seq % 20, seq * 10 FROM seq_1_to_100;
		INSERT INTO audit (what) VALUES ('created');`)

	serve := func(name string, cp mirrordv1alpha1.DBCopy, url string) (int, func() string) {
		port := freePort(t)
		b, _ := json.Marshal(Branch{Engine: mirrordv1alpha1.DBEngineMariaDB, Copy: cp, Port: port})
		work := filepath.Join(dir, name)
		if err := os.Mkdir(work, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(work, int(my.uid), int(my.gid)); err != nil {
			t.Fatal(err)
		}
		logPath := filepath.Join(dir, name+".log")
		cmd := my.background([]string{EnvURL + "=" + url, EnvBranch + "=" + string(b)}, logPath, bin, "db-branch", "serve", "--work-dir", work)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		log := func() string { l, _ := os.ReadFile(logPath); return string(l) }
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		for {
			if _, err := mariadb(port, "shop", "SELECT 1"); err == nil {
				return port, log
			}
			select {
			case err := <-done:
				return 0, func() string { return "exited: " + errString(err) + "\n" + log() }
			case <-ctx.Done():
				t.Fatalf("branch %s did not answer within 90 s\n%s", name, log())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	url := "mysql://app:" + "s3%20cr%27et%5Cx" + "@127.0.0.1:" + strconv.Itoa(srcPort) + "/shop"

	port, log := serve("schema", mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopySchema, Tables: map[string]mirrordv1alpha1.DBTableCopy{
		"users":  {Filter: "id <= 3"},
		"orders": {Filter: "user_id = 5"}, // rows whose user is not copied: the foreign key is not checked
	}}, url)
	if port == 0 {
		t.Fatalf("the schema branch: %s", log())
	}
	for sql, want := range map[string]string{
		"SELECT group_concat(name ORDER BY id) FROM users": "user1,user2,user3",
		"SELECT count(*), sum(total) FROM orders":          "5\t2200.00", // orders 4, 24, 44, 64, 84
		"SELECT count(*) FROM audit":                       "0",
		"SELECT count(*) FROM information_schema.referential_constraints WHERE constraint_schema = 'shop'": "1",
	} {
		if got, err := mariadb(port, "shop", sql); err != nil || got != want {
			t.Errorf("branch: %s = %q (%v), want %q", sql, got, err, want)
		}
	}
	if out, err := mariadb(port, "shop", "INSERT INTO users VALUES (99, 'local'); DELETE FROM orders"); err != nil {
		t.Fatalf("writing to the branch: %v: %s", err, out)
	}
	if got, _ := mariadb(srcPort, "shop", "SELECT (SELECT count(*) FROM users WHERE id = 99), (SELECT count(*) FROM orders)"); got != "0\t100" {
		t.Errorf("the source after writes to the branch: %q, want no user 99 and its 100 orders", got)
	}

	port, log = serve("all", mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopyAll}, url)
	if got, err := mariadb(port, "shop", "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM orders), (SELECT count(*) FROM audit)"); port == 0 || err != nil || got != "20\t100\t1" {
		t.Errorf("an All branch: %q (%v), want every row\n%s", got, err, log())
	}

	port, log = serve("empty", mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopyEmpty}, url)
	if got, err := mariadb(port, "shop", "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'shop'"); port == 0 || err != nil || got != "0" {
		t.Errorf("an Empty branch has %q tables (%v), want none\n%s", got, err, log())
	}

	// A wrong password: the branch's program fails saying what the dump tool said.
	port, log = serve("refused", mirrordv1alpha1.DBCopy{Mode: mirrordv1alpha1.DBCopySchema}, strings.Replace(url, "s3%20", "nope", 1))
	if port != 0 || !strings.Contains(log(), "copy the schema: mariadb-dump") || !strings.Contains(log(), "Access denied for user 'app'") {
		t.Errorf("a source refusing the password: want the branch failing with the dump's words:\n%s", log())
	}
}

func errString(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}
