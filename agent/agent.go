// Package agent is what runs inside the containers the webhook injects: it logs in to Vault with
// the pod's service-account token, renders the templates named by the agent config into the
// memory volume, and, as a sidecar, renews the token and leases, re-renders on change, notifies
// the app and revokes leases on shutdown. It reads agentconfig.Config and nothing else.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/internal/cliflags"
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
		fmt.Fprintln(stderr, "not ready: files not rendered yet")
		return 1
	}
	return 0
}

// Agent renders one config.
type Agent struct {
	cfg      *agentconfig.Config
	log      *slog.Logger
	backends map[string]Backend
	// now and sleep are replaceable in tests.
	now func() time.Time

	// trimMemory releases start-up pages after the first render (the binary, not tests).
	trimMemory bool

	tokens  map[string]*tokenState
	entries map[string]*entry // cache of secret calls, by identity + cacheKey
	started time.Time
}

type tokenState struct {
	auth     *api.SecretAuth
	renewAt  time.Time
	obtained time.Time
}

// entry is one fetched secret and when to renew or refetch it.
type entry struct {
	identity  string
	path      string
	data      map[string]any
	secret    *Secret
	fetchedAt time.Time
	// renewAt is when to renew the lease (leased, renewable secrets).
	renewAt time.Time
	// refetchAt is when to fetch a new secret: the refresh interval for unleased secrets, or
	// ahead of the lease's end when it can no longer be extended.
	refetchAt time.Time
	leaseEnd  time.Time
}

// New builds an agent with Vault backends for every identity.
func New(cfg *agentconfig.Config, log *slog.Logger) (*Agent, error) {
	backends := map[string]Backend{}
	for _, id := range cfg.Identities {
		b, err := newVaultBackend(id, cfg.ServiceAccountTokenFile)
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

// Once logs in and renders every file, retrying transient failures for up to budget.
func (a *Agent) Once(ctx context.Context, budget time.Duration) error {
	deadline := a.now().Add(budget)
	bo := newBackoff()
	for attempt := 1; ; attempt++ {
		_, err := a.pass(ctx)
		if err == nil {
			a.saveToken()
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
// and the token when configured to.
func (a *Agent) Run(ctx context.Context) error {
	a.loadToken()
	bo := newBackoff()
	first := true
	for {
		changed, err := a.pass(ctx)
		switch {
		case ctx.Err() != nil:
			// Stopping: a pass cut short by the shutdown is not a failure.
			a.shutdown()
			return nil
		case err == nil:
			bo.reset()
			if first {
				if err := os.WriteFile(filepath.Join(a.cfg.HomeDir, "ready"), []byte("ok\n"), 0o644); err != nil {
					return fmt.Errorf("write ready marker: %w", err)
				}
				a.saveToken()
				a.log.Info("rendered all files; ready", "files", len(a.templates()), "elapsed", time.Since(a.started).Round(time.Millisecond).String())
				first = false
				if a.trimMemory {
					if n, err := trimStartupPages(); err != nil {
						a.log.Debug("start-up pages not released", "error", err.Error())
					} else {
						a.log.Debug("released start-up pages", "bytes", n)
					}
				}
			} else if len(changed) > 0 {
				a.log.Info("files changed", "files", strings.Join(changed, ","))
				a.notify(ctx)
			}
		case first && isPermanent(err):
			// Before the first render nothing runs yet: exit so the reason becomes the
			// container's termination message, and the kubelet retries with backoff.
			return err
		default:
			a.log.Warn("render failed; keeping the last good files", "error", err.Error())
			if isPermanent(err) {
				// A denial may come from an expired or revoked token: log in afresh next time.
				clear(a.tokens)
			}
		}
		wait := time.Until(a.nextAction())
		if err != nil {
			wait = bo.next()
		}
		if wait < 0 {
			wait = 0
		}
		select {
		case <-ctx.Done():
			a.shutdown()
			return nil
		case <-time.After(wait):
		}
		if err == nil {
			a.maintain(ctx)
		}
	}
}

// pass renders every template once, fetching what the cache lacks, and writes changed files.
func (a *Agent) pass(ctx context.Context) ([]string, error) {
	var changed []string
	for _, t := range a.templates() {
		if t.err != nil {
			return nil, t.err
		}
		identity := t.identity
		out, err := render(ctx, t.tmpl, func(ctx context.Context, path string, data map[string]any) (*Secret, error) {
			return a.fetch(ctx, identity, path, data)
		})
		if err != nil {
			return nil, err
		}
		wrote, err := writeFile(a.cfg.SecretsDir, t.file, out, t.perms)
		if err != nil {
			return nil, &permanentError{fmt.Errorf("write %s: %w", t.file, err)}
		}
		if wrote {
			changed = append(changed, t.file)
		}
	}
	return changed, nil
}

type boundTemplate struct {
	tmpl
	identity string
	err      error
}

// templates lists what to render: the secrets of the config, then the ConfigMap's templates.
func (a *Agent) templates() []boundTemplate {
	var out []boundTemplate
	for _, s := range a.cfg.Secrets {
		text := s.Template
		if text == "" {
			text = defaultTemplate(s.Path)
		}
		out = append(out, boundTemplate{tmpl: tmpl{name: s.Name, text: text, file: s.File, perms: os.FileMode(s.Perms)}, identity: s.Identity})
	}
	if a.cfg.TemplatesDir == "" {
		return out
	}
	ents, err := os.ReadDir(a.cfg.TemplatesDir)
	if err != nil {
		return append(out, boundTemplate{err: &permanentError{fmt.Errorf("read templates directory: %w", err)}})
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || e.IsDir() && !strings.HasSuffix(n, "tmpl") {
			continue
		}
		if strings.HasSuffix(n, ".ctmpl") || strings.HasSuffix(n, ".tmpl") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(a.cfg.TemplatesDir, n))
		if err != nil {
			return append(out, boundTemplate{err: &permanentError{fmt.Errorf("read template %s: %w", n, err)}})
		}
		file := strings.TrimSuffix(strings.TrimSuffix(n, ".ctmpl"), ".tmpl")
		out = append(out, boundTemplate{tmpl: tmpl{name: n, text: string(b), file: file, perms: 0o644}, identity: a.cfg.TemplatesIdentity})
	}
	return out
}

// fetch returns the cached secret or reads (or, with arguments, writes) it.
func (a *Agent) fetch(ctx context.Context, identity, path string, data map[string]any) (*Secret, error) {
	key := identity + "\x00" + cacheKey(path, data)
	if e, ok := a.entries[key]; ok {
		return e.secret, nil
	}
	b, err := a.login(ctx, identity)
	if err != nil {
		return nil, err
	}
	var s *api.Secret
	if data != nil {
		s, err = b.Write(ctx, path, data)
	} else {
		s, err = b.Read(ctx, path)
	}
	if err != nil {
		return nil, err
	}
	now := a.now()
	e := &entry{identity: identity, path: path, data: data, secret: fromAPI(s), fetchedAt: now}
	a.schedule(e, s.LeaseDuration, now)
	a.entries[key] = e
	if s.LeaseID != "" {
		a.log.Info("fetched leased secret", "path", path, "lease_duration", s.LeaseDuration, "renewable", s.Renewable)
	}
	return e.secret, nil
}

// schedule sets when to act on e after Vault granted ttl seconds.
func (a *Agent) schedule(e *entry, ttl int, now time.Time) {
	e.renewAt, e.refetchAt = time.Time{}, time.Time{}
	if e.secret.LeaseID == "" {
		// KV and other unleased secrets: read again every refresh interval. Certificates
		// (pki/issue) carry their expiry instead of a lease: re-issue at two thirds of it.
		e.refetchAt = now.Add(time.Duration(a.cfg.RefreshInterval))
		if exp, ok := expiration(e.secret.Data); ok && exp.After(now) {
			e.leaseEnd = exp
			e.refetchAt = now.Add(jitter(exp.Sub(now) * 2 / 3))
		}
		return
	}
	d := time.Duration(ttl) * time.Second
	e.leaseEnd = now.Add(d)
	if e.secret.Renewable {
		// Renew at half the lease: a renewal that Vault caps (max TTL near) is then seen with
		// at least half a lease left, which is the overlap the app gets to switch credentials.
		e.renewAt = now.Add(jitter(d / 2))
		return
	}
	// Not renewable: fetch anew at two thirds of the lifetime, leaving the old credentials
	// valid while the app switches.
	e.refetchAt = now.Add(jitter(d * 2 / 3))
}

// expiration reads the "expiration" field (Unix seconds) that certificate endpoints return.
func expiration(data map[string]any) (time.Time, bool) {
	var secs int64
	switch v := data["expiration"].(type) {
	case json.Number:
		n, err := v.Int64()
		if err != nil {
			return time.Time{}, false
		}
		secs = n
	case float64:
		secs = int64(v)
	case int64:
		secs = v
	default:
		return time.Time{}, false
	}
	return time.Unix(secs, 0), secs > 0
}

// maintain renews what is due and drops from the cache what must be fetched again.
func (a *Agent) maintain(ctx context.Context) {
	now := a.now()
	for id, t := range a.tokens {
		if !t.renewAt.IsZero() && !now.Before(t.renewAt) {
			a.renewToken(ctx, id, t)
		}
	}
	for key, e := range a.entries {
		switch {
		case !e.refetchAt.IsZero() && !now.Before(e.refetchAt):
			delete(a.entries, key)
		case !e.renewAt.IsZero() && !now.Before(e.renewAt):
			a.renewLease(ctx, key, e)
		}
	}
}

func (a *Agent) renewLease(ctx context.Context, key string, e *entry) {
	b := a.backends[e.identity]
	want := e.secret.LeaseDuration
	s, err := b.RenewLease(ctx, e.secret.LeaseID, want)
	now := a.now()
	if err != nil {
		a.log.Warn("lease renewal failed; fetching a new secret", "path", e.path, "error", err.Error())
		delete(a.entries, key)
		return
	}
	if s.LeaseDuration < want {
		// The lease is capped by its max TTL: renewing can no longer extend it. Fetch new
		// credentials at two thirds of what remains; the old ones stay valid meanwhile.
		e.renewAt = time.Time{}
		e.leaseEnd = now.Add(time.Duration(s.LeaseDuration) * time.Second)
		// Switch now: the app gets all that remains of the old lease (at least half a lease,
		// see schedule) to pick up the new credentials while the old ones still work.
		e.refetchAt = now
		a.log.Info("lease capped by its max TTL; fetching new credentials now", "path", e.path, "old_valid_seconds", s.LeaseDuration)
		return
	}
	a.schedule(e, s.LeaseDuration, now)
	a.log.Debug("lease renewed", "path", e.path, "lease_duration", s.LeaseDuration)
}

// nextAction is the earliest renewal or refetch.
func (a *Agent) nextAction() time.Time {
	next := a.now().Add(time.Hour)
	consider := func(t time.Time) {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	for _, t := range a.tokens {
		consider(t.renewAt)
	}
	for _, e := range a.entries {
		consider(e.renewAt)
		consider(e.refetchAt)
	}
	return next
}

// login returns the identity's backend with a valid token, logging in when needed.
func (a *Agent) login(ctx context.Context, identity string) (Backend, error) {
	b, ok := a.backends[identity]
	if !ok {
		return nil, &permanentError{fmt.Errorf("unknown identity %q", identity)}
	}
	if t, ok := a.tokens[identity]; ok && t.auth != nil {
		return b, nil
	}
	auth, err := b.Login(ctx)
	if err != nil {
		return nil, err
	}
	b.SetToken(auth.ClientToken)
	a.setToken(identity, auth)
	a.log.Info("logged in to Vault", "identity", identity, "ttl_seconds", auth.LeaseDuration, "renewable", auth.Renewable, "policies", strings.Join(auth.Policies, ","))
	return b, nil
}

func (a *Agent) setToken(identity string, auth *api.SecretAuth) {
	now := a.now()
	t := &tokenState{auth: auth, obtained: now}
	if auth.LeaseDuration > 0 {
		t.renewAt = now.Add(jitter(time.Duration(auth.LeaseDuration) * time.Second * 2 / 3))
	}
	a.tokens[identity] = t
}

func (a *Agent) renewToken(ctx context.Context, identity string, t *tokenState) {
	b := a.backends[identity]
	want := t.auth.LeaseDuration
	var s *api.Secret
	err := errors.New("token is not renewable")
	if t.auth.Renewable {
		s, err = b.RenewToken(ctx, want)
	}
	if err != nil || s == nil || s.Auth == nil || s.Auth.LeaseDuration < want {
		// Not renewable, failed, or capped by its max TTL: log in again now, while the current
		// token still works.
		auth, lerr := b.Login(ctx)
		if lerr != nil {
			a.log.Warn("token renewal and new login failed; will retry", "identity", identity, "error", lerr.Error())
			t.renewAt = a.now().Add(5 * time.Second)
			return
		}
		b.SetToken(auth.ClientToken)
		a.setToken(identity, auth)
		a.saveToken()
		a.log.Info("logged in again", "identity", identity, "ttl_seconds", auth.LeaseDuration)
		// Vault revokes a token's leases when the token ends: fetch leased secrets again
		// under the new token while the old one, and its credentials, still live.
		for _, e := range a.entries {
			if e.identity == identity && e.secret.LeaseID != "" {
				e.refetchAt, e.renewAt = a.now(), time.Time{}
			}
		}
		return
	}
	a.setToken(identity, s.Auth)
}

// saveToken keeps the default identity's token in the home volume so the classic sidecar can
// reuse the init container's login.
func (a *Agent) saveToken() {
	t, ok := a.tokens[agentconfig.DefaultIdentity]
	if !ok || a.cfg.HomeDir == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(a.cfg.HomeDir, "token"), []byte(t.auth.ClientToken), 0o600); err != nil {
		a.log.Warn("could not keep the Vault token in the home volume", "error", err.Error())
	}
}

// loadToken adopts a token left by the init container, if it still works.
func (a *Agent) loadToken() {
	b, ok := a.backends[agentconfig.DefaultIdentity]
	if !ok {
		return
	}
	raw, err := os.ReadFile(filepath.Join(a.cfg.HomeDir, "token"))
	if err != nil || len(raw) == 0 {
		return
	}
	b.SetToken(strings.TrimSpace(string(raw)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := b.RenewToken(ctx, 0)
	if err != nil || s == nil || s.Auth == nil {
		b.SetToken("")
		return
	}
	a.setToken(agentconfig.DefaultIdentity, s.Auth)
	a.log.Info("reusing the init container's Vault token")
}

// shutdown revokes leases and tokens when configured, within a bounded time.
func (a *Agent) shutdown() {
	revoke := false
	leases := 0
	for _, e := range a.entries {
		if e.secret.LeaseID != "" {
			leases++
		}
	}
	if a.cfg.RevokeOnShutdown != nil {
		revoke = *a.cfg.RevokeOnShutdown
	} else {
		revoke = leases > 0
	}
	if !revoke {
		a.log.Info("stopping; leases and token left to expire", "leases", leases)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n := 0
	for _, e := range a.entries {
		if e.secret.LeaseID == "" {
			continue
		}
		if err := a.backends[e.identity].RevokeLease(ctx, e.secret.LeaseID); err != nil {
			// Policies rarely grant sys/leases/revoke; revoking the token below revokes every
			// lease obtained with it, so this is only worth a debug line.
			a.log.Debug("lease not revoked by ID; relying on token revocation", "path", e.path, "error", err.Error())
			continue
		}
		n++
	}
	tokens := 0
	for id := range a.tokens {
		if err := a.backends[id].RevokeToken(ctx); err != nil {
			a.log.Warn("token not revoked; its leases expire on their own", "identity", id, "error", err.Error())
			continue
		}
		tokens++
	}
	a.log.Info("stopping; revoked leases and token", "leases", leases, "revoked_by_id", n, "tokens", tokens)
}

// notify tells the app that files changed.
func (a *Agent) notify(ctx context.Context) {
	n := a.cfg.Notify
	if n == nil {
		return
	}
	if n.Signal != "" && n.Process != "" {
		sig := agentconfig.Signals[n.Signal]
		pids := findProcesses(n.Process)
		for _, pid := range pids {
			if err := syscall.Kill(pid, sig); err != nil {
				a.log.Warn("signal not sent", "pid", pid, "process", n.Process, "error", err.Error())
			}
		}
		if len(pids) == 0 {
			a.log.Warn("no process to notify; does the pod set shareProcessNamespace: true?", "process", n.Process)
		} else {
			a.log.Info("notified", "process", n.Process, "signal", n.Signal, "pids", len(pids))
		}
	}
	if len(n.Command) > 0 {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(cctx, n.Command[0], n.Command[1:]...).CombinedOutput()
		if err != nil {
			a.log.Warn("notify command failed", "command", n.Command[0], "error", err.Error(), "output", strings.TrimSpace(string(out)))
		}
	}
}

// findProcesses returns the PIDs whose /proc/<pid>/comm is name.
func findProcesses(name string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == self {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(comm)) == name {
			pids = append(pids, pid)
		}
	}
	return pids
}

// backoff is capped exponential backoff with full jitter.
type backoff struct{ n int }

func newBackoff() *backoff { return &backoff{} }
func (b *backoff) reset()  { b.n = 0 }
func (b *backoff) next() time.Duration {
	base := 250 * time.Millisecond << min(b.n, 7) // caps at 32 s
	b.n++
	return base/2 + time.Duration(rand.Int64N(int64(base/2)+1))
}

// jitter spreads renewals of many pods: 90–100 % of d.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - time.Duration(rand.Int64N(int64(d/10)+1))
}
