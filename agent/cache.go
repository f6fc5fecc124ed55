package agent

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// entry is one fetched secret and when to renew or refetch it.
type entry struct {
	identity string
	path     string
	data     map[string]any
	secret   *Secret
	// renewAt is when to renew the lease (leased, renewable secrets).
	renewAt time.Time
	// refetchAt is when to fetch a new secret: the refresh interval for unleased secrets, or
	// ahead of the lease's end when it can no longer be extended.
	refetchAt time.Time
	leaseEnd  time.Time
}

// leased reports a secret whose reading had a cost: a lease (dynamic credentials) or an
// expiry (an issued certificate). Fetching it again issues a new one.
func (e *entry) leased() bool { return e.secret.LeaseID != "" || !e.leaseEnd.IsZero() }

// entryKey is the key of a secret call in the cache (and in prefetch's answers).
func entryKey(identity, path string, data map[string]any) string {
	return identity + "\x00" + cacheKey(path, data)
}

// fetch returns the cached secret or reads (or, with arguments, writes) it, and its cache key.
func (a *Agent) fetch(ctx context.Context, identity, path string, data map[string]any) (*Secret, string, error) {
	key := entryKey(identity, path, data)
	if e, ok := a.entries[key]; ok {
		return e.secret, key, nil
	}
	// The admission policy's path globs (Config.PathRules) cover paths the webhook could not
	// see: those of a templates ConfigMap and those built at render time. Checked before any
	// login, so a refused path never reaches Vault.
	err := a.cfg.CheckPath(identity, path, agentconfig.OperationOf(path, data != nil))
	if err != nil {
		return nil, key, &permanentError{err}
	}
	var s *api.Secret
	if p, ok := a.takePrefetched(identity, key); ok {
		// Read ahead of the pass with the token the identity still holds (prefetch): the
		// same answer this read would have had.
		if p.loginErr != nil {
			return nil, key, p.loginErr
		}
		s, err = p.secret, p.err
	} else {
		var b Backend
		if b, err = a.login(ctx, identity); err != nil {
			return nil, key, err
		}
		if data != nil {
			s, err = b.Write(ctx, path, data)
		} else {
			s, err = b.Read(ctx, path)
		}
	}
	if err != nil {
		if errors.Is(err, errForbidden) {
			// Vault answers 403 both for a path the policy does not grant and for a token
			// that no longer works: only the latter calls for a new login.
			a.checkToken(ctx, identity)
		}
		return nil, key, err
	}
	return a.remember(identity, path, data, key, s).secret, key, nil
}

// remember caches what Vault answered for key and schedules its renewal or refetch.
func (a *Agent) remember(identity, path string, data map[string]any, key string, s *api.Secret) *entry {
	now := a.now()
	e := &entry{identity: identity, path: path, data: data, secret: fromAPI(s)}
	a.schedule(e, s.LeaseDuration, now)
	a.entries[key] = e
	if e.leased() {
		a.dirty = true
	}
	if s.LeaseID != "" {
		a.log.Info("fetched leased secret", "path", path, "lease_duration", s.LeaseDuration, "renewable", s.Renewable)
	}
	return e
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
			a.dirty = a.dirty || e.leased()
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
	a.dirty = true
	if err != nil {
		if isPermanent(err) || now.After(e.leaseEnd) {
			a.log.Warn("lease renewal failed; fetching a new secret", "path", e.path, "error", err.Error())
			delete(a.entries, key)
			return
		}
		// Vault unreachable or busy: the lease still runs, so keep the credentials the app
		// uses and try again soon rather than issuing new ones.
		a.log.Warn("lease renewal failed; will retry", "path", e.path, "error", err.Error())
		e.renewAt = now.Add(min(5*time.Second, e.leaseEnd.Sub(now)/4))
		return
	}
	if s.LeaseDuration < want {
		// The lease is capped by its max TTL: renewing can no longer extend it. Fetch new
		// credentials now; the app gets all that remains of the old lease (at least half a
		// lease, see schedule) to pick them up while the old ones still work.
		e.renewAt = time.Time{}
		e.leaseEnd = now.Add(time.Duration(s.LeaseDuration) * time.Second)
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
		a.saveState()
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
	// Nothing is left to adopt: a later process of this pod (none is expected) starts afresh.
	a.removeState()
	a.log.Info("stopping; revoked leases and token", "leases", leases, "revoked_by_id", n, "tokens", tokens)
}
