package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/kubectl-mirrord/kubectl-mirrord/pkg/ociimage"
)

// buildRigImages builds the images every rig node needs besides the project's own: the
// pod sandbox (pause), the sample app (echo), real servers (nginx) and cluster DNS (coredns).
func buildRigImages(p Paths, bins Binaries) ([]string, error) {
	return buildImages(p, filepath.Join(p.Cache, "images"), bins["coredns"])
}

// buildImages writes the pause, echo and nginx images into dir, and the coredns image when a
// coredns binary is given (kind clusters bring their own DNS and sandbox).
func buildImages(p Paths, dir, coredns string) ([]string, error) {
	binDir := filepath.Join(dir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, err
	}
	for _, prog := range []string{"pause", "echo"} {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(binDir, prog), "./test/images/"+prog)
		cmd.Dir = p.Repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %v: %s", prog, err, out)
		}
	}
	specs := map[string]ociimage.Spec{
		"pause.tar": {Ref: pauseImage, Files: map[string]string{"/pause": filepath.Join(binDir, "pause")}, Entrypoint: []string{"/pause"}},
		"echo.tar": {Ref: echoImage, Files: map[string]string{"/echo": filepath.Join(binDir, "echo")},
			Entrypoint: []string{"/echo"}, Cmd: []string{"serve"}},
	}
	// Debian's nginx, a real server that sets its process title (test/images/nginx).
	nginxRoot, err := unpackDebian(p.Cache, "nginx", "nginx-common")
	if err != nil {
		return nil, err
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		return nil, err
	}
	nginxFiles := filepath.Join(p.Repo, "test", "images", "nginx")
	specs["nginx.tar"] = ociimage.Spec{Ref: nginxImage, Roots: []string{nginxRoot},
		Files: map[string]string{
			"/etc/nginx/nginx.conf": filepath.Join(nginxFiles, "nginx.conf"),
			"/etc/passwd":           filepath.Join(nginxFiles, "passwd"),
			"/etc/group":            filepath.Join(nginxFiles, "group"),
			"/var/lib/nginx/.keep":  empty, // its compiled-in temp paths' parent
			"/var/log/nginx/.keep":  empty, // its compiled-in error log, opened before the config
		},
		LibsFor: []string{"/usr/sbin/nginx"}, Entrypoint: []string{"/usr/sbin/nginx"}}
	// Debian's PostgreSQL 15 server (this machine's: hack/install-deps.sh installs it), with
	// a data directory initdb makes here, owned by the image's postgres user (999).
	pgData, err := initPostgres()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(filepath.Dir(pgData))
	pgFiles := filepath.Join(p.Repo, "test", "images", "postgres")
	// With the tools a database branch's pod runs (initdb, pg_dump, psql: kubectl-mirrord
	// db-branch serve), so the same image serves as the branches' (--db-branch-image).
	pgTools := []string{postgresBin}
	for _, tool := range []string{"initdb", "pg_dump", "psql"} {
		pgTools = append(pgTools, filepath.Join(filepath.Dir(postgresBin), tool))
	}
	// initdb runs the server through popen, which needs /bin/sh (the official images have it),
	pgTools = append(pgTools, "/bin/dash", "/usr/bin/locale") // and the server runs `locale -a`
	pgTools = append(pgTools, "/bin/sleep")                   // for scripts waiting for a server (make bench)
	specs["postgres.tar"] = ociimage.Spec{Ref: postgresImage, WithLibs: pgTools,
		// The server's modules: initdb loads several (the text search dictionaries, PL/pgSQL).
		Dirs:  []string{"/usr/share/postgresql/15", "/usr/lib/postgresql/15/lib"},
		Owned: []ociimage.OwnedTree{{Host: pgData, Image: "/var/lib/postgresql/data", UID: 999, GID: 999}},
		Files: map[string]string{
			"/bin/sh":                     "/bin/dash",
			"/etc/passwd":                 filepath.Join(pgFiles, "passwd"),
			"/etc/group":                  filepath.Join(pgFiles, "group"),
			"/etc/postgresql/pg_hba.conf": filepath.Join(pgFiles, "pg_hba.conf"),
			"/usr/share/zoneinfo/UTC":     "/usr/share/zoneinfo/UTC",     // the server's time zone below
			"/usr/share/zoneinfo/Etc/UTC": "/usr/share/zoneinfo/Etc/UTC", // initdb's
		},
		Entrypoint: []string{postgresBin, "-D", "/var/lib/postgresql/data", "-c", "listen_addresses=*",
			"-c", "unix_socket_directories=/tmp", "-c", "hba_file=/etc/postgresql/pg_hba.conf", "-c", "jit=off",
			"-c", "timezone=UTC", "-c", "log_timezone=UTC"}}
	// Debian's MariaDB 10.11 server and tools (this machine's: hack/install-deps.sh installs
	// them), with a data directory mariadb-install-db makes here; it is also a MariaDB
	// branch's image (kubectl-mirrord db-branch serve runs mariadb-install-db, a shell script).
	myData, err := initMariaDB()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(filepath.Dir(myData))
	myFiles := filepath.Join(p.Repo, "test", "images", "mariadb")
	specs["mariadb.tar"] = ociimage.Spec{Ref: mariadbImage,
		WithLibs: []string{"/usr/sbin/mariadbd", "/usr/bin/mariadb", "/usr/bin/mariadb-dump", "/usr/bin/my_print_defaults",
			"/bin/dash", "/bin/cat", "/usr/bin/dirname", "/bin/sed", "/bin/uname", "/bin/mkdir", "/bin/chmod"},
		Dirs:  []string{"/usr/share/mysql", "/usr/lib/mysql/plugin"},
		Owned: []ociimage.OwnedTree{{Host: myData, Image: "/var/lib/mysql", UID: 999, GID: 999}},
		Files: map[string]string{
			"/bin/sh":                     "/bin/dash",
			"/usr/bin/mariadb-install-db": "/usr/bin/mariadb-install-db",
			"/etc/passwd":                 filepath.Join(myFiles, "passwd"),
			"/etc/group":                  filepath.Join(myFiles, "group"),
			"/etc/mysql/init.sql":         filepath.Join(myFiles, "init.sql"),
		},
		Entrypoint: []string{"/usr/sbin/mariadbd", "--no-defaults", "--datadir=/var/lib/mysql", "--socket=/tmp/mysqld.sock",
			"--pid-file=/tmp/mysqld.pid", "--tmpdir=/tmp", "--bind-address=*", "--port=3306", "--skip-name-resolve",
			"--skip-log-bin", "--innodb-buffer-pool-size=64M", "--init-file=/etc/mysql/init.sql"}}
	if coredns != "" {
		specs["coredns.tar"] = ociimage.Spec{Ref: corednsImage, Files: map[string]string{"/coredns": coredns}, Entrypoint: []string{"/coredns"}}
	}
	var out []string
	for file, spec := range specs {
		path := filepath.Join(dir, file)
		if err := ociimage.Write(spec, path); err != nil {
			return nil, err
		}
		out = append(out, path)
	}
	return out, nil
}

// postgresBin is Debian's PostgreSQL 15 server.
const postgresBin = "/usr/lib/postgresql/15/bin/postgres"

// initPostgres makes a PostgreSQL data directory (user postgres, no password) with initdb,
// run as this machine's postgres user (initdb refuses root), in a directory of its own.
func initPostgres() (string, error) {
	dir, err := os.MkdirTemp("", "mirrord-rig-pg-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		return "", err
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command("runuser", "-u", "postgres", "--", filepath.Join(filepath.Dir(postgresBin), "initdb"),
		"-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("initdb (hack/install-deps.sh installs PostgreSQL 15): %v: %s", err, out)
	}
	return data, nil
}

// initMariaDB makes a MariaDB data directory (root on the socket, no password) with
// mariadb-install-db, run as this machine's mysql user, in a directory of its own.
func initMariaDB() (string, error) {
	dir, err := os.MkdirTemp("", "mirrord-rig-mariadb-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		return "", err
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command("runuser", "-u", "mysql", "--", "/usr/bin/mariadb-install-db", "--no-defaults", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("mariadb-install-db (hack/install-deps.sh installs MariaDB): %v: %s", err, out)
	}
	return data, nil
}
