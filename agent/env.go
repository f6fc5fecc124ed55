package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/internal/envfile"
)

// renderEnv writes the app's environment variables into the env file. The file is written
// whole or not at all: an app container started on half of its variables would fail in ways
// far from the cause. A variable's secret is fetched through the same cache as the files, so
// username and password of one database role come from one lease, whichever outputs read it.
func (a *Agent) renderEnv(ctx context.Context, res *passResult) error {
	env := a.cfg.Env
	vars := make([]envfile.Var, 0, len(env.Vars)+1)
	var used []string
	var errs []error
	for _, v := range env.Vars {
		val, err := a.envValue(ctx, v, &used)
		if err == nil {
			err = envfile.CheckValue(v.Name, val)
		}
		if err != nil {
			errs = append(errs, err)
			if !isPermanent(err) {
				// Vault unreachable or the login failing: the others would fail alike.
				break
			}
			continue
		}
		vars = append(vars, envfile.Var{Name: v.Name, Value: val})
	}
	if len(errs) > 0 {
		a.dropUnleased(used)
		return errors.Join(errs...)
	}
	dir, name := filepath.Split(env.File)
	if env.Versioned {
		vars = append(vars, envfile.Var{Name: agentconfig.EnvVersionVar, Value: a.envVersion(env.File, vars)})
	}
	content, err := envfile.Encode(vars)
	if err != nil {
		return &permanentError{err}
	}
	// Readable by the app's user: the exec style reads it in the app container.
	outcome, err := writeFile(dir, name, content, 0o644)
	if err != nil {
		return &permanentError{fmt.Errorf("write env file: %w", err)}
	}
	if res.wrote(env.File, outcome) {
		res.envReplaced = true
	}
	return nil
}

// envValue is one variable's value: its template's output, or one key of its secret.
func (a *Agent) envValue(ctx context.Context, v agentconfig.EnvVar, used *[]string) (string, error) {
	fetch := func(ctx context.Context, path string, data map[string]any) (*Secret, error) {
		s, key, err := a.fetch(ctx, v.Identity, path, data)
		*used = append(*used, key)
		return s, err
	}
	if v.Template != "" {
		out, err := render(ctx, tmpl{name: "env-" + v.Name, text: v.Template}, fetch)
		return string(out), err
	}
	s, err := fetch(ctx, v.Path, nil)
	if err != nil {
		return "", fmt.Errorf("env %s: %w", v.Name, err)
	}
	data := kvData(s.Data)
	val, ok := data[v.Key]
	if !ok {
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, strconv.Quote(k))
		}
		sort.Strings(keys)
		// The keys are names, not values: safe to say which there are.
		return "", &permanentError{fmt.Errorf("env %s: secret %s has no key %q (its keys: %s)", v.Name, v.Path, v.Key, strings.Join(keys, ", "))}
	}
	switch t := val.(type) {
	case string:
		return t, nil
	case nil:
		return "", &permanentError{fmt.Errorf("env %s: key %q of secret %s is null", v.Name, v.Key, v.Path)}
	default:
		// Numbers and booleans as JSON writes them; objects and lists as JSON.
		b, err := json.Marshal(t)
		if err != nil {
			return "", &permanentError{fmt.Errorf("env %s: key %q of secret %s: %w", v.Name, v.Key, v.Path, err)}
		}
		return string(b), nil
	}
}

// dropUnleased forgets the unleased entries a failed render read, so the retry reads fresh data.
func (a *Agent) dropUnleased(keys []string) {
	for _, key := range keys {
		if e, ok := a.entries[key]; ok && !e.leased() {
			delete(a.entries, key)
		}
	}
}

// envVersion is the version of the variables: the one already in the file when the values are
// the same (a restarted agent must not restart the app), else a new one. It is a time, not a
// digest of the values, so it tells nothing about them.
func (a *Agent) envVersion(file string, vars []envfile.Var) string {
	if old, err := os.ReadFile(file); err == nil {
		if prev, err := envfile.Parse(old); err == nil && len(prev) == len(vars)+1 {
			same := true
			for i, v := range vars {
				same = same && prev[i] == v
			}
			if last := prev[len(prev)-1]; same && last.Name == agentconfig.EnvVersionVar {
				return last.Value
			}
		}
	}
	return strconv.FormatInt(a.now().UnixNano(), 10)
}

// copyBinary puts a copy of the running binary at dst for app containers to run (`exec`): the
// app image needs nothing of ours. An existing copy of the same size is kept. The copy streams
// and is synced before the rename: the pages of the file count against the agent's memory limit
// until written back, and a 25 MB binary read whole beside them was enough to be OOM-killed.
func copyBinary(dst string) error {
	src, err := os.Executable()
	if err != nil {
		return fmt.Errorf("copy binary: %w", err)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy binary: %w", err)
	}
	defer in.Close()
	sfi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("copy binary: %w", err)
	}
	if dfi, err := os.Stat(dst); err == nil && dfi.Size() == sfi.Size() {
		return nil
	}
	out, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return fmt.Errorf("copy binary to %s: %w", dst, err)
	}
	tmp := out.Name()
	defer os.Remove(tmp)
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Chmod(0o755)
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		return fmt.Errorf("copy binary to %s: %w", dst, err)
	}
	return nil
}

// lastErrorFile holds the reason the agent is not ready yet; `agent ready` prints it, so the
// kubelet's startup-probe Event names it while the app waits.
const lastErrorFile = "last-error"

func (a *Agent) recordError(err error) {
	p := filepath.Join(a.cfg.HomeDir, lastErrorFile)
	if err == nil {
		_ = os.Remove(p)
		return
	}
	msg := err.Error()
	if len(msg) > 2048 {
		msg = msg[:2048] + "…"
	}
	_ = os.WriteFile(p, []byte(time.Now().UTC().Format(time.RFC3339)+" "+msg+"\n"), 0o644)
}
