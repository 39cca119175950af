package db

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoPostgres means no PostgreSQL server binaries were found.
var ErrNoPostgres = errors.New("no PostgreSQL server binaries found: install them (e.g. `apt-get install postgresql`) or set DATABASE_URL")

// ClusterConfig configures a private Postgres server.
type ClusterConfig struct {
	// DataDir holds the cluster's files. It is created (0700) and initdb'ed
	// on the first Start and reused afterwards. Postgres's own output is
	// appended to DataDir/postgres.log. Required.
	DataDir string
	// BinDir holds initdb and postgres. Defaults to FindBinDir().
	BinDir string
	// Settings are passed as `-c name=value` and override the defaults:
	// unix socket only, wal_level=logical, room for 20 replication slots and
	// 300 connections. Defaults to none.
	Settings map[string]string
	// Logger receives the cluster's lifecycle events. Defaults to
	// slog.Default().
	Logger *slog.Logger
}

// Cluster is a private PostgreSQL server run from the installed binaries,
// reachable only over a unix socket. Start, Stop and Kill may be called from
// any goroutine; they are serialized. ConnString is fixed at NewCluster, so
// connection strings stay valid across restarts.
//
// As root, initdb and postgres run as the "postgres" system user, which must
// own DataDir (Start chowns it when it initializes it) and be able to
// traverse its parents.
type Cluster struct {
	cfg       ClusterConfig
	settings  map[string]string
	socketDir string
	port      string
	cred      *syscall.Credential // nil: run as ourselves

	mu      sync.Mutex
	proc    *os.Process   // the postmaster; nil when not started
	exited  chan struct{} // closed when the postmaster has exited
	logFile *os.File
	logFrom int64 // size of the log when the postmaster started
}

// socketLockName is the longest name postgres gives a file in the socket
// directory for port 5432. Its path must fit in sockaddr_un.sun_path (108
// bytes), with room to spare.
const socketLockName = ".s.PGSQL.5432.lock"

// NewCluster checks cfg and fills in its defaults. It starts nothing.
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("cluster config: DataDir is required")
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("cluster config: resolving DataDir: %w", err)
	}
	cfg.DataDir = dataDir
	if cfg.BinDir == "" {
		if cfg.BinDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Cluster{cfg: cfg}

	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("looking up user postgres (postgres refuses to run as root): %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	}

	// The socket goes in DataDir when the path is short enough, else in a
	// directory under os.TempDir() named after DataDir, so that the same
	// DataDir always gets the same connection string.
	socketDir := dataDir
	if len(filepath.Join(socketDir, socketLockName)) >= 100 {
		sum := sha256.Sum256([]byte(dataDir))
		socketDir = filepath.Join(os.TempDir(), "pods-pg-"+hex.EncodeToString(sum[:6]))
	}
	c.settings = map[string]string{
		"listen_addresses":        "",
		"unix_socket_directories": socketDir,
		"port":                    "5432",
		"wal_level":               "logical",
		"max_wal_senders":         "20",
		"max_replication_slots":   "20",
		"max_connections":         "300",
		"shared_buffers":          "128MB",
		// Tables that grow fast from empty (a new install, a load test)
		// get statistics within seconds rather than a minute, so that
		// queries stop using plans made for empty tables.
		"autovacuum_naptime": "5s",
	}
	maps.Copy(c.settings, cfg.Settings)
	c.socketDir, _, _ = strings.Cut(c.settings["unix_socket_directories"], ",")
	c.socketDir = strings.TrimSpace(c.socketDir)
	c.port = c.settings["port"]
	if c.socketDir == "" {
		return nil, errors.New("cluster config: Settings[unix_socket_directories] must name a directory")
	}
	return c, nil
}

// ConnString returns a keyword/value connection string for database dbname
// over the cluster's unix socket, as the superuser postgres.
func (c *Cluster) ConnString(dbname string) string {
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=%s sslmode=disable",
		quoteValue(c.socketDir), quoteValue(c.port), quoteValue(dbname))
}

// quoteValue quotes a keyword/value connection string value when needed.
func quoteValue(v string) string {
	if v != "" && !strings.ContainsAny(v, ` '\`) {
		return v
	}
	v = strings.ReplaceAll(v, `\`, `\\`)
	return "'" + strings.ReplaceAll(v, `'`, `\'`) + "'"
}

// Start initializes DataDir if it holds no cluster yet, starts postgres and
// returns once it accepts connections. If postgres exits or ctx ends first,
// Start returns an error that quotes the end of postgres's log. Start after
// Stop or Kill restarts the server on the same data.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		select {
		case <-c.exited: // it died on its own: start it again
			c.cleanupLocked()
		default:
			return errors.New("starting postgres: already started")
		}
	}
	if _, err := os.Stat(filepath.Join(c.cfg.DataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.initdb(ctx); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("checking data directory: %w", err)
	}
	if err := c.makeDir(c.socketDir); err != nil {
		return fmt.Errorf("creating socket directory: %w", err)
	}
	for attempt := 1; ; attempt++ {
		err := c.startLocked(ctx)
		// Right after a kill, an exiting backend may still hold the old
		// shared memory for a moment, and postgres refuses to start.
		if err == nil || attempt == 30 || !strings.Contains(err.Error(), "pre-existing shared memory block") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startLocked starts the postmaster once and waits until it accepts
// connections. c.mu must be held.
func (c *Cluster) startLocked(ctx context.Context) error {
	logFile, err := os.OpenFile(filepath.Join(c.cfg.DataDir, "postgres.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening postgres log: %w", err)
	}
	if c.cred != nil {
		_ = logFile.Chown(int(c.cred.Uid), int(c.cred.Gid))
	}
	info, err := logFile.Stat()
	if err != nil {
		logFile.Close()
		return fmt.Errorf("opening postgres log: %w", err)
	}

	args := []string{"-D", c.cfg.DataDir}
	for _, name := range slices.Sorted(maps.Keys(c.settings)) {
		args = append(args, "-c", name+"="+c.settings[name])
	}
	// Not ctx: it bounds the start, not the server's life.
	cmd := c.command(context.Background(), filepath.Join(c.cfg.BinDir, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	began := time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting postgres: %w", err)
	}
	// The only goroutine a Cluster owns: it reaps the postmaster and ends
	// when the postmaster does, which Stop and Kill wait for.
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	c.proc, c.exited, c.logFile, c.logFrom = cmd.Process, exited, logFile, info.Size()

	if err := c.waitReady(ctx); err != nil {
		tail := c.logTail()
		c.killLocked()
		return fmt.Errorf("starting postgres: %w\n%s", err, tail)
	}
	c.cfg.Logger.Info("postgres started", "data_dir", c.cfg.DataDir, "pid", cmd.Process.Pid,
		"elapsed", time.Since(began).Round(time.Millisecond))
	return nil
}

// waitReady polls until postgres accepts a connection, it exits, or ctx ends.
func (c *Cluster) waitReady(ctx context.Context) error {
	delay := 5 * time.Millisecond
	for {
		connCtx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(connCtx, c.ConnString("postgres"))
		cancel()
		if err == nil {
			return conn.Close(ctx)
		}
		timer := time.NewTimer(delay)
		select {
		case <-c.exited:
			timer.Stop()
			return errors.New("postgres exited")
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("waiting for postgres to accept connections: %w (last error: %v)", ctx.Err(), err)
		case <-timer.C:
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// Stop shuts postgres down with a fast shutdown (SIGINT: open transactions
// roll back, clients are disconnected) and waits for it to exit. If ctx ends
// first, it kills postgres and its children. Stop on a cluster that is not
// running does nothing.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return nil
	}
	began := time.Now()
	if err := c.proc.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.killLocked()
		return fmt.Errorf("stopping postgres: %w", err)
	}
	select {
	case <-c.exited:
		c.cleanupLocked()
		c.cfg.Logger.Info("postgres stopped", "data_dir", c.cfg.DataDir,
			"elapsed", time.Since(began).Round(time.Millisecond))
		return nil
	case <-ctx.Done():
		c.killLocked()
		return fmt.Errorf("stopping postgres: %w; killed it", ctx.Err())
	}
}

// Kill kills postgres and its children with SIGKILL, as a crash would, and
// waits for the postmaster to exit. The next Start recovers from the WAL.
// Kill on a cluster that is not running does nothing.
func (c *Cluster) Kill() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return nil
	}
	c.killLocked()
	c.cfg.Logger.Info("postgres killed", "data_dir", c.cfg.DataDir)
	return nil
}

// killLocked SIGKILLs the postmaster's process group and waits until its
// children are gone too: a new postmaster refuses to start while an old
// backend still holds the shared memory.
func (c *Cluster) killLocked() {
	pid := c.proc.Pid
	// The postmaster leads its own process group (Setpgid), so -pid reaches
	// every backend at once.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-c.exited
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && groupAlive(pid); {
		time.Sleep(5 * time.Millisecond)
	}
	c.cleanupLocked()
}

// groupAlive reports whether a process of group pgid is still running (not
// merely a zombie waiting to be reaped by init).
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); err != nil {
		return false
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// The fields after the parenthesized command: state ppid pgrp ...
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 3 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

func (c *Cluster) cleanupLocked() {
	c.logFile.Close()
	if c.socketDir != c.cfg.DataDir {
		_ = os.Remove(c.socketDir) // only if empty; Start makes it again
	}
	c.proc, c.exited, c.logFile = nil, nil, nil
}

// CreateDatabase creates database name unless it exists.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("creating database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("creating database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: someone beat us to it
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating database %s: %w", name, err)
	}
	return nil
}

// initdb creates DataDir, hands it to the postgres user and initializes a
// cluster in it whose superuser postgres needs no password over the socket.
func (c *Cluster) initdb(ctx context.Context) error {
	if err := c.makeDir(c.cfg.DataDir); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	if c.cred != nil {
		err := filepath.WalkDir(c.cfg.DataDir, func(path string, _ os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, int(c.cred.Uid), int(c.cred.Gid))
		})
		if err != nil {
			return fmt.Errorf("handing data directory to user postgres: %w", err)
		}
	}
	began := time.Now()
	args := []string{"-D", c.cfg.DataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"}
	if c.settings["fsync"] == "off" {
		args = append(args, "--no-sync") // the server will not sync either
	}
	cmd := c.command(ctx, filepath.Join(c.cfg.BinDir, "initdb"), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		hint := ""
		if c.cred != nil {
			hint = " (user postgres must be able to reach it: check its parents' permissions)"
		}
		return fmt.Errorf("initializing %s%s: %w\n%s", c.cfg.DataDir, hint, err, tail(out, 20))
	}
	c.cfg.Logger.Info("postgres data directory initialized", "data_dir", c.cfg.DataDir,
		"elapsed", time.Since(began).Round(time.Millisecond))
	return nil
}

// makeDir creates dir (0700) if needed and, as root, gives it to the
// postgres user.
func (c *Cluster) makeDir(dir string) error {
	// Parents we create must let the postgres user through.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if c.cred != nil {
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return err
		}
	}
	return os.Chmod(dir, 0o700)
}

// command prepares a postgres binary to run as the right user in its own
// process group, so signals from a terminal do not reach it and Kill can
// reach all its children. Pdeathsig asks the kernel to SIGQUIT (immediate
// shutdown) the postmaster if we die without stopping it; strictly, it fires
// when the OS thread that started it exits, which Go does not do to an
// unlocked thread.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.cfg.DataDir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: c.cred,
		Setpgid:    true,
		Pdeathsig:  syscall.SIGQUIT,
	}
	return cmd
}

// logTail returns the last lines postgres wrote since it was started.
func (c *Cluster) logTail() string {
	f, err := os.Open(c.logFile.Name())
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.NewSectionReader(f, c.logFrom, 1<<20))
	return tail(b, 20)
}

// tail returns the last n lines of b, prefixed for quoting in an error.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\t" + strings.Join(lines, "\n\t")
}

// FindBinDir returns the directory holding the PostgreSQL server binaries:
// that of initdb on PATH, else `pg_config --bindir`, else the newest
// /usr/lib/postgresql/<version>/bin. It returns ErrNoPostgres if none has
// both initdb and postgres.
func FindBinDir() (string, error) {
	if path, err := exec.LookPath("initdb"); err == nil {
		// Debian links /usr/local/bin/initdb and friends to the versioned
		// directory; use the real one.
		if real, err := filepath.EvalSymlinks(path); err == nil {
			path = real
		}
		if dir := filepath.Dir(path); hasServer(dir) {
			return dir, nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); hasServer(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestVersion := "", -1.0
	for _, dir := range dirs {
		version, err := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		if err == nil && version > bestVersion && hasServer(dir) {
			best, bestVersion = dir, version
		}
	}
	if best == "" {
		return "", ErrNoPostgres
	}
	return best, nil
}

// hasServer reports whether dir holds initdb and postgres.
func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		if info, err := os.Stat(filepath.Join(dir, name)); err != nil || info.IsDir() {
			return false
		}
	}
	return true
}
