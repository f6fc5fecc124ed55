// Package envexec is `vault-injector exec`, which runs inside app containers: it starts the
// container's original command with the variables of the agent's env file added (env style
// exec), and, with --check, is the liveness probe of env-on-change restart, failing once the
// file holds other values than those the container started with. It reads the env file and
// nothing else; it never talks to Vault.
package envexec

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/internal/envfile"
)

// Main runs `vault-injector exec [--env-file F] -- command [args…]` and
// `vault-injector exec --check [--env-file F]`. It returns only on failure (or after --check).
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("env-file", agentconfig.EnvFile, "env file the agent renders")
	check := fs.Bool("check", false, "exit 1 when the env file's version differs from the one this container started with (liveness probe of env-on-change: restart)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *check {
		ok, msg := Check(*file, os.Getenv, "/proc/1/environ")
		fmt.Fprintln(stdout, msg)
		if !ok {
			return 1
		}
		return 0
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fmt.Fprintln(stderr, "vault-injector exec: no command after --")
		return 2
	}
	err := Exec(*file, argv, os.Environ())
	fmt.Fprintf(stderr, "vault-injector exec: %v\n", err)
	return 127
}

// Env returns environ with the env file's variables added (replacing equal names).
func Env(file string, environ []string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read the env file (the agent renders it before app containers start; is the pod injected with env- annotations?): %w", err)
	}
	vars, err := envfile.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	set := make(map[string]bool, len(vars))
	for _, v := range vars {
		set[v.Name] = true
	}
	out := make([]string, 0, len(environ)+len(vars))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !set[name] {
			out = append(out, kv)
		}
	}
	for _, v := range vars {
		out = append(out, v.Name+"="+v.Value)
	}
	return out, nil
}

// Exec replaces this process with argv, with the env file's variables added: the PID, signals
// and exit code are the app's own.
func Exec(file string, argv, environ []string) error {
	env, err := Env(file, environ)
	if err != nil {
		return err
	}
	path, err := lookPath(argv[0], env)
	if err != nil {
		return err
	}
	if err := syscall.Exec(path, argv, env); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil
}

// lookPath resolves name against the PATH of env, as a shell would for the command.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found in PATH %s", name, path)
}

// Check compares the version of the env file with the one the container started with: its own
// environment (file style: the kubelet set it from the file) or, failing that, that of the
// container's first process (exec style: the wrapper set it for the app only). ok is false only
// when both versions are known and differ.
func Check(file string, getenv func(string) string, pid1Environ string) (ok bool, msg string) {
	data, err := os.ReadFile(file)
	if err != nil {
		return true, "env file not readable, nothing to compare: " + err.Error()
	}
	vars, err := envfile.Parse(data)
	if err != nil {
		return true, "env file not parsable, nothing to compare: " + err.Error()
	}
	current := ""
	for _, v := range vars {
		if v.Name == agentconfig.EnvVersionVar {
			current = v.Value
		}
	}
	started := getenv(agentconfig.EnvVersionVar)
	if started == "" {
		if b, err := os.ReadFile(pid1Environ); err == nil {
			prefix := []byte(agentconfig.EnvVersionVar + "=")
			for _, kv := range bytes.Split(b, []byte{0}) {
				if v, ok := bytes.CutPrefix(kv, prefix); ok {
					started = string(v)
				}
			}
		}
	}
	switch {
	case current == "" || started == "":
		return true, "env version unknown, nothing to compare"
	case current != started:
		return false, fmt.Sprintf("env variables changed since this container started (version %s, now %s): restart to read them", started, current)
	}
	return true, "env variables current (version " + current + ")"
}
