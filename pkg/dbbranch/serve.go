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
	if b.Engine != mirrordv1alpha1.DBEnginePostgreSQL {
		return fmt.Errorf("%s branches are not made yet: only PostgreSQL", b.Engine)
	}
	src, err := Source(b.Engine, b.Database, getenv)
	if err != nil {
		return err
	}
	for _, f := range b.Copy.Tables {
		if err := ValidFilter(f.Filter); err != nil {
			return err
		}
	}
	addEngineToPath()
	if err := os.MkdirAll(l.Run, 0o700); err != nil {
		return err
	}
	pwfile := filepath.Join(l.Run, "initdb-password")
	if err := os.WriteFile(pwfile, []byte(src.Password+"\n"), 0o600); err != nil {
		return err
	}
	logf("Making the branch's database (superuser %s)", src.User)
	err = run(ctx, PGInit(l, src, pwfile), nil, nil)
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
	final := PGServer(l, b.Port, true)
	path, err := exec.LookPath(final.Args[0])
	if err != nil {
		return err
	}
	return syscall.Exec(path, final.Args, os.Environ())
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
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		if last = run(ctx, *branchPsql(l, port, user, "postgres", "SELECT 1"), nil, nil); last == nil {
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
