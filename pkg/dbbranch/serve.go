package dbbranch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	mirrordv1alpha1 "github.com/kubectl-mirrord/kubectl-mirrord/pkg/apis/mirrord/v1alpha1"
)

// Branch is what a branch's container is told to make (EnvBranch, as JSON).
type Branch struct {
	Engine   mirrordv1alpha1.DBEngine `json:"engine"`
	Database string                   `json:"database,omitempty"`
	Copy     mirrordv1alpha1.DBCopy   `json:"copy"`
	Port     int                      `json:"port"`
}

// ReadBranch reads EnvBranch.
func ReadBranch(getenv func(string) string) (Branch, error) {
	var b Branch
	if err := json.Unmarshal([]byte(getenv(EnvBranch)), &b); err != nil {
		return b, fmt.Errorf("$%s: %w", EnvBranch, err)
	}
	if b.Port == 0 {
		b.Port = DefaultPort(b.Engine)
	}
	return b, nil
}

// Limits of the seeding: how long it may take in all, and how much of a failing tool's error
// output is kept for the branch's status.
const (
	seedTimeout  = 30 * time.Minute
	startTimeout = 60 * time.Second
	errTail      = 800
)

// Serve makes the branch in this container and then becomes its server (exec), so the
// server is the container's process and gets its signals. It returns only on failure.
func Serve(ctx context.Context, b Branch, l Layout, getenv func(string) string, logf func(string, ...any)) error {
	src, err := Source(b.Engine, b.Database, getenv)
	if err != nil {
		return err
	}
	for _, f := range b.Copy.Tables {
		if err := ValidFilter(f.Filter); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(l.Run, 0o700); err != nil {
		return err
	}
	switch b.Engine {
	case mirrordv1alpha1.DBEnginePostgreSQL:
		return servePG(ctx, b, l, src, logf)
	case mirrordv1alpha1.DBEngineMySQL, mirrordv1alpha1.DBEngineMariaDB:
		return serveMy(ctx, b, l, src, logf)
	}
	return fmt.Errorf("%s branches are not made: only PostgreSQL, MySQL and MariaDB", b.Engine)
}

// servePG makes a PostgreSQL branch and becomes its server.
func servePG(ctx context.Context, b Branch, l Layout, src Conn, logf func(string, ...any)) error {
	addEngineToPath()
	pwfile := filepath.Join(l.Run, "initdb-password")
	if err := os.WriteFile(pwfile, []byte(src.Password+"\n"), 0o600); err != nil {
		return err
	}
	logf("Making the branch's database (superuser %s)", src.User)
	err := run(ctx, PGInit(l, src, pwfile), nil, nil)
	_ = os.Remove(pwfile)
	if err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	if err := os.WriteFile(filepath.Join(l.Data, "pg_hba.conf"), []byte(PGHBA(src)), 0o600); err != nil {
		return err
	}
	server, err := start(PGServer(l, b.Port, false))
	if err != nil {
		return err
	}
	stopServer := func() {
		_ = server.Process.Signal(syscall.SIGINT) // a fast shutdown
		_ = server.Wait()
	}
	if err := waitPG(ctx, l, b.Port, src.User); err != nil {
		stopServer()
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, seedTimeout)
	defer cancel()
	for _, s := range PGSeed(l, b.Port, src, b.Copy) {
		logf("Seeding: %s", s.What)
		if err := runStep(sctx, s); err != nil {
			stopServer()
			return fmt.Errorf("%s: %w", s.What, err)
		}
	}
	stopServer()
	logf("Seeded; serving on port %d", b.Port)
	return become(PGServer(l, b.Port, true))
}

// become replaces this process with c (exec): the server is the container's process, and
// gets its signals.
func become(c Cmd) error {
	path, err := exec.LookPath(c.Args[0])
	if err != nil {
		return err
	}
	return syscall.Exec(path, c.Args, append(os.Environ(), c.Env...))
}

// serveMy makes a MySQL or MariaDB branch with the image's own programs and becomes its server.
func serveMy(ctx context.Context, b Branch, l Layout, src Conn, logf func(string, ...any)) error {
	tools, err := MyToolsFor(func(name string) bool { _, err := exec.LookPath(name); return err == nil })
	if err != nil {
		return err
	}
	branchCnf, err := MyBranchCnf(l)
	if err != nil {
		return err
	}
	sourceCnf, err := MySourceCnf(src)
	if err != nil {
		return err
	}
	for name, body := range map[string]string{myBranchCnf: branchCnf, mySourceCnf: sourceCnf} {
		if err := os.WriteFile(filepath.Join(l.Run, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	logf("Making the branch's database with %s", tools.Server)
	var initOut tail // mariadb-install-db says why it failed on its standard output
	if err := run(ctx, MyInit(tools, l), nil, &initOut); err != nil {
		if msg := initOut.String(); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return fmt.Errorf("making the data directory: %w", err)
	}
	server, err := start(MyServer(tools, l, b.Port, false))
	if err != nil {
		return err
	}
	stopServer := func() {
		_ = server.Process.Signal(syscall.SIGTERM) // a clean shutdown
		_ = server.Wait()
	}
	client := Cmd{Args: []string{tools.Client, "--defaults-extra-file=" + filepath.Join(l.Run, myBranchCnf)}}
	if err := waitUntil(ctx, func() error { return run(ctx, withArgs(client, "-e", "SELECT 1"), nil, nil) }); err != nil {
		stopServer()
		return err
	}
	logf("Making the source's user %s and database %s", src.User, src.Database)
	if err := run(ctx, client, strings.NewReader(MySetupSQL(src)), nil); err != nil {
		stopServer()
		return fmt.Errorf("making the source's user and database: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, seedTimeout)
	defer cancel()
	for _, s := range MySeed(tools, l, src, b.Copy) {
		logf("Seeding: %s", s.What)
		if err := runStep(sctx, s); err != nil {
			stopServer()
			return fmt.Errorf("%s: %w", s.What, err)
		}
	}
	stopServer()
	_ = os.Remove(filepath.Join(l.Run, mySourceCnf)) // the source's password is not needed any more
	logf("Seeded; serving on port %d", b.Port)
	return become(MyServer(tools, l, b.Port, true))
}

func withArgs(c Cmd, args ...string) Cmd {
	c.Args = append(slices.Clone(c.Args), args...)
	return c
}

// addEngineToPath puts the engine's own tools on PATH: Debian keeps them in a versioned
// directory (the official images already have them on PATH).
func addEngineToPath() {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.Sort(dirs)
	slices.Reverse(dirs) // the newest first
	if len(dirs) > 0 {
		_ = os.Setenv("PATH", strings.Join(dirs, ":")+":"+os.Getenv("PATH"))
	}
}

func waitPG(ctx context.Context, l Layout, port int, user string) error {
	return waitUntil(ctx, func() error { return run(ctx, *branchPsql(l, port, user, "postgres", "SELECT 1"), nil, nil) })
}

// waitUntil asks until the branch's server answers (ask returns nil), for startTimeout.
func waitUntil(ctx context.Context, ask func() error) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		if last = ask(); last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the branch's server did not start within %s: %w", startTimeout, last)
}

func command(ctx context.Context, c Cmd) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Args[0], c.Args[1:]...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func start(c Cmd) (*exec.Cmd, error) {
	cmd := exec.Command(c.Args[0], c.Args[1:]...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd, cmd.Start()
}

// tail keeps the last bytes written: a tool's error, for the branch's status.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > errTail {
		t.b = t.b[len(t.b)-errTail:]
	}
	return len(p), nil
}

func (t *tail) String() string { return strings.TrimSpace(string(bytes.ToValidUTF8(t.b, nil))) }

func run(ctx context.Context, c Cmd, stdin io.Reader, stdout io.Writer) error {
	cmd := command(ctx, c)
	var errOut tail
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, &errOut
	if err := cmd.Run(); err != nil {
		return toolError(c, err, &errOut)
	}
	return nil
}

func toolError(c Cmd, err error, errOut *tail) error {
	if msg := errOut.String(); msg != "" {
		return fmt.Errorf("%s: %s", c.Args[0], msg)
	}
	return fmt.Errorf("%s: %w", c.Args[0], err)
}

// runStep runs a step: one command, or the source's side piped into the branch's.
func runStep(ctx context.Context, s Step) error {
	if s.From == nil {
		return run(ctx, *s.To, nil, nil)
	}
	from, to := command(ctx, *s.From), command(ctx, *s.To)
	var fromErr, toErr tail
	from.Stderr, to.Stderr = &fromErr, &toErr
	pipe, err := from.StdoutPipe()
	if err != nil {
		return err
	}
	to.Stdin = pipe
	if err := to.Start(); err != nil {
		return err
	}
	if err := from.Run(); err != nil {
		_ = to.Process.Kill()
		_ = to.Wait()
		return toolError(*s.From, err, &fromErr)
	}
	if err := to.Wait(); err != nil {
		return toolError(*s.To, err, &toErr)
	}
	return nil
}
