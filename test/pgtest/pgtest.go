// Package pgtest starts a throwaway PostgreSQL server on loopback for tests, from the Debian
// package `make tools` installs. The server refuses to run as root, so when the test runs as
// root it runs as the `postgres` system user, in a temporary directory that user owns.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Password is the superuser's password (user postgres).
const Password = "pgtest-superuser"

// Server is a running PostgreSQL.
type Server struct {
	Port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// binDir finds the newest /usr/lib/postgresql/<major>/bin.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "postgres")); err == nil {
			return dirs[i], nil
		}
	}
	return "", errors.New("no PostgreSQL server in /usr/lib/postgresql/*/bin: run make tools (installs the postgresql package)")
}

// Start initialises a cluster in a new temporary directory and starts the server on a free
// loopback port.
func Start(ctx context.Context) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, done: make(chan struct{}), log: filepath.Join(dir, "postgres.log")}
	cred, err := runAs(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if cred != nil {
		_ = os.Chown(pw, int(cred.Uid), int(cred.Gid))
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--pwfile", pw,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	f, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir, "-c", "fsync=off",
		"-c", "max_connections=50", "-c", "shared_buffers=16MB")
	s.cmd.Stdout, s.cmd.Stderr = f, f
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		f.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	go func() { _ = s.cmd.Wait(); f.Close(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := s.Connect(ctx, "postgres", Password)
		if err == nil {
			conn.Close(ctx)
			return s, nil
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(s.log)
			os.RemoveAll(dir)
			return nil, fmt.Errorf("postgres exited: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("postgres not ready after 30s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// StartT starts a server for one test and stops it at cleanup.
func StartT(t testing.TB) *Server {
	t.Helper()
	s, err := Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(s.log)
			t.Logf("postgres log:\n%s", b)
		}
		s.Stop()
	})
	return s
}

// runAs returns the credential to run the server with: none when not root, else the postgres
// user, who is given dir.
func runAs(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres user (installed with the postgresql package): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// URL is a connection URL for user/password to database postgres, as Vault's database plugin
// takes it (with {{username}}/{{password}} templates when user is "{{username}}").
func (s *Server) URL(user, password string) string {
	return fmt.Sprintf("postgresql://%s:%s@127.0.0.1:%d/postgres?sslmode=disable", user, password, s.Port)
}

// Connect opens a connection as user.
func (s *Server) Connect(ctx context.Context, user, password string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres sslmode=disable connect_timeout=5", s.Port))
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password = user, password
	return pgx.ConnectConfig(ctx, cfg)
}

// RoleExists reports whether a login role of that name exists.
func (s *Server) RoleExists(ctx context.Context, name string) (bool, error) {
	c, err := s.Connect(ctx, "postgres", Password)
	if err != nil {
		return false, err
	}
	defer c.Close(ctx)
	var n int
	err = c.QueryRow(ctx, "select count(*) from pg_roles where rolname = $1", name).Scan(&n)
	return n > 0, err
}

// Roles lists the login roles whose name starts with prefix (Vault's database plugin names
// its users v-<display name>-<role>-…).
func (s *Server) Roles(ctx context.Context, prefix string) ([]string, error) {
	c, err := s.Connect(ctx, "postgres", Password)
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, "select rolname from pg_roles where starts_with(rolname, $1) order by rolname", prefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// Stop stops the server and removes its directory.
func (s *Server) Stop() {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	}
	os.RemoveAll(s.dir)
}

// Logs returns the server log (for failures).
func (s *Server) Logs() string {
	b, _ := os.ReadFile(s.log)
	return strings.TrimSpace(string(b))
}

// CanLogin reports whether user/password can open a session (nil) or why not.
func (s *Server) CanLogin(ctx context.Context, user, password string) error {
	c, err := s.Connect(ctx, user, password)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return c.Ping(ctx)
}

// ParseCredentials reads "username=…" and "password=…" lines, the shape the tests' templates
// render database credentials in.
func ParseCredentials(text string) (user, password string, err error) {
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, "=")
		switch {
		case ok && k == "username":
			user = v
		case ok && k == "password":
			password = v
		}
	}
	if user == "" || password == "" {
		return "", "", fmt.Errorf("no username=/password= lines in %d bytes", len(text))
	}
	return user, password, nil
}
