package envexec

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vault-injector/vault-injector/agentconfig"
)

func writeEnv(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "app.env")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnvAddsAndReplaces(t *testing.T) {
	f := writeEnv(t, "DB_PASSWORD='s3cr=t'\nPEM='a\nb'\n")
	got, err := Env(f, []string{"PATH=/bin", "DB_PASSWORD=old", "HOME=/"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=/bin", "HOME=/", "DB_PASSWORD=s3cr=t", "PEM=a\nb"}
	if !slices.Equal(got, want) {
		t.Fatalf("Env = %q, want %q", got, want)
	}
	if _, err := Env(filepath.Join(t.TempDir(), "missing"), nil); err == nil || !strings.Contains(err.Error(), "the agent renders it before app containers start") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := Env(writeEnv(t, "X=unquoted\n"), nil); err == nil || !strings.Contains(err.Error(), "single quotes") {
		t.Fatalf("bad file: %v", err)
	}
}

func TestCheckComparesVersions(t *testing.T) {
	file := writeEnv(t, "K='v'\n"+agentconfig.EnvVersionVar+"='2'\n")
	pid1 := filepath.Join(t.TempDir(), "environ")
	if err := os.WriteFile(pid1, []byte("PATH=/bin\x00"+agentconfig.EnvVersionVar+"=1\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == agentconfig.EnvVersionVar {
				return v
			}
			return ""
		}
	}
	cases := []struct {
		name, own, pid1 string
		ok              bool
	}{
		{"own current", "2", "/nonexistent", true},
		{"own stale", "1", "/nonexistent", false},
		{"pid 1 stale (exec style)", "", pid1, false},
		{"unknown", "", "/nonexistent", true},
	}
	for _, c := range cases {
		ok, msg := Check(file, env(c.own), c.pid1)
		if ok != c.ok {
			t.Errorf("%s: ok = %v (%s), want %v", c.name, ok, msg, c.ok)
		}
	}
}

// The wrapper replaces itself with the command: the command's output, exit code and PID are
// the process's own.
func TestExecRunsTheCommandWithTheVariables(t *testing.T) {
	if os.Getenv("ENVEXEC_CHILD") != "" {
		os.Exit(Main([]string{"--env-file=" + os.Getenv("ENVEXEC_CHILD"), "--", "sh", "-c", `echo "$SECRET $$"; exit 7`}, os.Stdout, os.Stderr))
	}
	f := writeEnv(t, "SECRET='from-file'\n")
	cmd := exec.Command(os.Args[0], "-test.run=^TestExecRunsTheCommandWithTheVariables$")
	cmd.Env = append(os.Environ(), "ENVEXEC_CHILD="+f, "SECRET=from-env")
	out, err := cmd.Output()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 7 {
		t.Fatalf("exit = %v, want the command's 7; output %q", err, out)
	}
	fields := strings.Fields(string(out))
	if len(fields) != 2 || fields[0] != "from-file" || fields[1] != strconv.Itoa(cmd.Process.Pid) {
		t.Fatalf("output %q, want the file's value and the wrapper's own PID %d", out, cmd.Process.Pid)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "app")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, err := lookPath("app", []string{"PATH=/nonexistent:" + dir}); err != nil || p != bin {
		t.Fatalf("lookPath = %q, %v", p, err)
	}
	if _, err := lookPath("nope", []string{"PATH=" + dir}); err == nil || !strings.Contains(err.Error(), `command "nope" not found`) {
		t.Fatalf("lookPath missing = %v", err)
	}
	if p, _ := lookPath("/abs/x", nil); p != "/abs/x" {
		t.Fatalf("absolute path changed: %q", p)
	}
}
