package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is a podsd that podsbench built and started.
type server struct {
	url    string
	args   []string // podsd's flags
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited; nil before it started
	log    *lineLimiter
	dir    string // temporary: the binary and the data
}

// startServer builds ./cmd/podsd, starts it on a free port with its own
// Postgres in a temporary folder, and waits until it answers.
func startServer(ctx context.Context, opts options) (*server, error) {
	dir, err := os.MkdirTemp("", "podsbench-")
	if err != nil {
		return nil, err
	}
	// As root, podsd runs Postgres as the postgres user, who must get through.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &server{dir: dir}
	if err := s.build(ctx, opts); err != nil {
		s.stop()
		return nil, err
	}
	if err := s.start(ctx); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// build builds podsd and chooses its flags.
func (s *server) build(ctx context.Context, opts options) error {
	bin := filepath.Join(s.dir, "podsd")
	fmt.Fprintln(os.Stderr, "building ./cmd/podsd")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/podsd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building ./cmd/podsd (run podsbench from the module root): %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	s.url = "http://" + addr
	s.args = []string{"--addr", addr, "--data-dir", filepath.Join(s.dir, "data"),
		"--password-memory-kib", "64", "--write-rate", "1000", "--write-burst", "1000", "--log-level", "warn",
		"--change-source", opts.changeSource}
	if opts.dbMaxConns > 0 {
		s.args = append(s.args, "--db-max-conns", strconv.Itoa(opts.dbMaxConns))
	}
	return nil
}

// start starts the built podsd and waits until it answers.
func (s *server) start(ctx context.Context) error {
	s.cmd = exec.Command(filepath.Join(s.dir, "podsd"), s.args...)
	s.log = &lineLimiter{w: os.Stderr, left: serverLogLines}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.exited) }()
	began := time.Now()
	if err := waitHealthy(ctx, s.url, s.exited); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "podsd (pid %d) serving on %s after %s\n", s.pid(), s.url, time.Since(began).Round(time.Millisecond))
	return nil
}

// pid is the server's process id.
func (s *server) pid() int { return s.cmd.Process.Pid }

// restart stops the server and starts it again on the same data and port.
func (s *server) restart(ctx context.Context) error {
	s.halt()
	return s.start(ctx)
}

// stop stops the server and removes its folder.
func (s *server) stop() {
	s.halt()
	if err := os.RemoveAll(s.dir); err != nil {
		fmt.Fprintln(os.Stderr, "podsbench: removing", s.dir+":", err)
	}
}

// halt ends the server with SIGTERM (SIGKILL after 30 s), if it runs.
func (s *server) halt() {
	if s.exited == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.exited = nil
	if s.log.dropped > 0 {
		fmt.Fprintf(os.Stderr, "podsd: %d more log lines not shown\n", s.log.dropped)
	}
}

// serverLogLines is how many lines of podsd's log podsbench shows.
const serverLogLines = 20

// lineLimiter passes the first lines written to it on to w and counts the
// others.
type lineLimiter struct {
	w       io.Writer
	mu      sync.Mutex
	left    int // lines still to pass on
	dropped int
}

func (l *lineLimiter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 && l.left > 0 {
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			line = p[:i+1]
			l.left--
		}
		l.w.Write(line)
		p = p[len(line):]
	}
	l.dropped += bytes.Count(p, []byte{'\n'})
	return n, nil
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitHealthy polls the gRPC health check (in the Connect protocol) until
// it answers 200, the process exits or a minute has passed.
func waitHealthy(ctx context.Context, url string, exited <-chan struct{}) error {
	deadline := time.After(time.Minute)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/grpc.health.v1.Health/Check", strings.NewReader("{}"))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("podsd exited before serving")
		case <-deadline:
			return errors.New("podsd did not answer within a minute")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// userHz is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100 on
// every Linux platform Go supports).
const userHz = 100

// statFields returns the fields of /proc/PID/stat after the command name,
// starting with the state (field 3 in proc(5)).
func statFields(stat []byte) []string {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(stat[i+1:]))
}

// procCPU returns the user plus system CPU time of pid and its parent's pid.
func procCPU(pid int) (cpu time.Duration, ppid int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	f := statFields(b)
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ppid, _ = strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / userHz, ppid, nil
}

// cpuSample is the CPU time of a server and of each of its descendants
// (Postgres, when podsd runs its own) at one moment.
type cpuSample struct {
	server      time.Duration
	descendants map[int]time.Duration
}

// sampleCPU reads the CPU times of pid and its descendants.
func sampleCPU(pid int) (cpuSample, error) {
	server, _, err := procCPU(pid)
	if err != nil {
		return cpuSample{}, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return cpuSample{}, err
	}
	cpu := make(map[int]time.Duration)
	parent := make(map[int]int)
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if c, pp, err := procCPU(p); err == nil {
			cpu[p], parent[p] = c, pp
		}
	}
	s := cpuSample{server: server, descendants: make(map[int]time.Duration)}
	for p, c := range cpu {
		if descends(p, pid, parent) {
			s.descendants[p] = c
		}
	}
	return s, nil
}

// descends reports whether p is a descendant of ancestor.
func descends(p, ancestor int, parent map[int]int) bool {
	for p = parent[p]; p > 1; p = parent[p] {
		if p == ancestor {
			return true
		}
	}
	return false
}

// cpuDelta returns the CPU time the server and its descendants used
// between two samples.
func cpuDelta(before, after cpuSample) (server, descendants time.Duration) {
	for p, c := range after.descendants {
		descendants += c - before.descendants[p]
	}
	return after.server - before.server, descendants
}

// memStatus returns a field of /proc/PID/status in bytes, e.g. "VmHWM"
// (peak RSS) or "VmRSS".
func memStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		return kib << 10, err
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}
