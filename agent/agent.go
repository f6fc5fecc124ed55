// Package agent is what runs inside the containers the webhook injects: it logs in to Vault with
// the pod's service-account token, renders the templates named by the agent config into the
// memory volume, and, as a sidecar, renews the token and leases, re-renders on change, notifies
// the app and revokes leases on shutdown. It reads agentconfig.Config and nothing else.
package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/internal/cliflags"
	"github.com/vault-injector/vault-injector/internal/pagetrim"
)

// TerminationLog is where Kubernetes reads a container's termination message.
var TerminationLog = "/dev/termination-log"

// Main runs `vault-injector agent [flags]` and `vault-injector agent ready`; it returns the
// process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "ready" {
		return ready(args[1:], stderr)
	}
	fs := cliflags.New("agent", "agent [flags] | agent ready")
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", agentconfig.ConfigFile, "agent config file (written by the webhook)")
	once := fs.Bool("once", false, "render everything once and exit (init containers, mode init)")
	budget := fs.Duration("retry-budget", 2*time.Minute, "how long --once keeps retrying an unreachable Vault before failing")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	copyTo := fs.String("copy-binary-to", "", "copy this binary to the path, for app containers that run `exec` (env style exec, env-on-change restart)")
	if err := cliflags.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, err)
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "--log-level=%q: expected debug, info, warn or error\n", *level)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	cfg, err := agentconfig.Load(*cfgPath)
	if err != nil {
		return fail(log, err)
	}
	a, err := New(cfg, log)
	if err != nil {
		return fail(log, err)
	}
	if *copyTo != "" {
		if err := copyBinary(*copyTo); err != nil {
			return fail(log, err)
		}
	}
	if *once || cfg.Mode == agentconfig.ModeInit {
		if err := a.Once(ctx, *budget); err != nil {
			return fail(log, err)
		}
		return 0
	}
	a.trimMemory = true
	if err := a.Run(ctx); err != nil {
		return fail(log, err)
	}
	return 0
}

func fail(log *slog.Logger, err error) int {
	log.Error("agent failed", "error", err.Error())
	// Best effort: kubectl describe shows this as the container's termination message.
	_ = os.WriteFile(TerminationLog, []byte(err.Error()+"\n"), 0o644)
	return 1
}

func ready(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("ready", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", agentconfig.ReadyFile, "marker written after the first full render")
	if fs.Parse(args) != nil {
		return 2
	}
	if _, err := os.Stat(*file); err != nil {
		// The kubelet puts this output into the startup probe's Event: say why.
		why := "files not rendered yet"
		if b, err := os.ReadFile(filepath.Join(filepath.Dir(*file), lastErrorFile)); err == nil {
			why = strings.TrimSpace(string(b))
		}
		fmt.Fprintln(stderr, "not ready:", why)
		return 1
	}
	return 0
}

// permanentLinger is how long an agent that cannot become ready stays up before it exits.
var permanentLinger = 3 * time.Second

// Agent renders one config.
type Agent struct {
	cfg      *agentconfig.Config
	log      *slog.Logger
	backends map[string]Backend
	// now is replaceable in tests.
	now func() time.Time

	// trimMemory releases start-up pages after the first render (the binary, not tests).
	trimMemory bool

	tokens  map[string]*tokenState
	entries map[string]*entry // cache of secret calls, by identity + cacheKey
	// prefetched holds reads made ahead of a pass, by the same key, for fetch to take.
	prefetched   map[string]*prefetched
	prefetchDone bool // prefetch runs in the first pass only
	started      time.Time

	// logins counts the Vault logins of every agent process of this pod (carried in the state
	// file), so a restart that logs in again instead of adopting the token shows.
	logins int
	// dirty is set when tokens or leases changed since the state file was last written.
	dirty bool
}

// New builds an agent with Vault backends for every identity.
func New(cfg *agentconfig.Config, log *slog.Logger) (*Agent, error) {
	backends := map[string]Backend{}
	for _, id := range cfg.Identities {
		b, err := newVaultBackend(id, cfg.SATokenFile(id))
		if err != nil {
			return nil, err
		}
		backends[id.Name] = b
	}
	return NewWithBackends(cfg, log, backends), nil
}

// NewWithBackends is New with given backends (tests, other servers).
func NewWithBackends(cfg *agentconfig.Config, log *slog.Logger, backends map[string]Backend) *Agent {
	return &Agent{cfg: cfg, log: log, backends: backends, now: time.Now, tokens: map[string]*tokenState{}, entries: map[string]*entry{}, started: time.Now()}
}

// Once logs in and renders every file, retrying transient failures for up to budget. It adopts
// the state a previous run of this pod's agent left, and leaves its own for the next one.
func (a *Agent) Once(ctx context.Context, budget time.Duration) error {
	a.adopt(ctx)
	defer a.saveState()
	deadline := a.now().Add(budget)
	bo := newBackoff()
	for attempt := 1; ; attempt++ {
		_, err := a.pass(ctx)
		if err == nil {
			a.log.Info("rendered all files", "files", len(a.templates()), "elapsed", time.Since(a.started).Round(time.Millisecond).String())
			return nil
		}
		if isPermanent(err) {
			return err
		}
		wait := bo.next()
		if a.now().Add(wait).After(deadline) {
			return fmt.Errorf("gave up after %s (%d attempts): %w", budget, attempt, err)
		}
		a.log.Warn("render failed, retrying", "attempt", attempt, "in", wait.Round(time.Millisecond).String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// Run renders, reports ready, then keeps files current until ctx ends; then it revokes leases
// and the token when configured to. Templates render independently: one that fails keeps its
// last good file and is retried with fresh data, while the others keep rendering and tokens and
// leases keep being renewed.
func (a *Agent) Run(ctx context.Context) error {
	a.adopt(ctx)
	readyFile := filepath.Join(a.cfg.HomeDir, agentconfig.ReadyName)
	// A restarted sidecar finds the marker of its predecessor: the app already runs on these
	// files, so a failure is reported and retried, never a reason to exit.
	_, err := os.Stat(readyFile)
	ready := err == nil
	bo := newBackoff()
	for {
		res, err := a.pass(ctx)
		if ctx.Err() != nil {
			// Stopping: a pass cut short by the shutdown is not a failure.
			a.shutdown()
			return nil
		}
		a.recordError(err)
		if res.envReplaced {
			a.log.Info("env variables changed", "file", a.cfg.Env.File, "restart", a.cfg.Env.Versioned)
		}
		if len(res.replaced) > 0 {
			a.log.Info("files changed", "files", strings.Join(res.replaced, ","))
			a.notify(ctx)
		}
		switch {
		case err == nil:
			bo.reset()
			if !ready {
				if err := os.WriteFile(readyFile, []byte("ok\n"), 0o644); err != nil {
					return fmt.Errorf("write ready marker: %w", err)
				}
				ready = true
				a.log.Info("rendered all files; ready", "files", len(a.templates()), "elapsed", time.Since(a.started).Round(time.Millisecond).String())
				a.releaseStartupPages()
			}
		case !ready && isPermanent(err):
			// Before the first render nothing runs yet: exit so the reason becomes the
			// container's termination message, and the kubelet retries with backoff. What was
			// obtained so far is kept for the next process to adopt.
			a.saveState()
			a.log.Error("cannot render; exiting after the startup probe has seen why", "error", err.Error())
			// Stay long enough for the startup probe to run and the kubelet to record the
			// reason in an Event: a native sidecar's restarts alone do not show it.
			select {
			case <-ctx.Done():
			case <-time.After(permanentLinger):
			}
			return err
		default:
			a.log.Warn("render failed; keeping the last good files of the templates that failed, retrying them", "error", err.Error())
		}
		a.saveState()
		wait := time.Until(a.nextAction())
		if err != nil {
			wait = min(wait, bo.next())
		}
		select {
		case <-ctx.Done():
			a.shutdown()
			return nil
		case <-time.After(max(wait, 0)):
		}
		a.maintain(ctx)
	}
}

func (a *Agent) releaseStartupPages() {
	if !a.trimMemory {
		return
	}
	if n, err := pagetrim.StartupPages(); err != nil {
		a.log.Debug("start-up pages not released", "error", err.Error())
	} else {
		a.log.Debug("released start-up pages", "bytes", n)
	}
}
