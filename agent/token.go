package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

type tokenState struct {
	auth    *api.SecretAuth
	renewAt time.Time
	// expires is when the token stops working unless renewed (zero: no TTL).
	expires time.Time
}

// login returns the identity's backend with a valid token, logging in when it has none.
// Holding at most one token per identity is what keeps a failing pod from filling Vault with
// tokens: a token is dropped only when Vault says it no longer works (checkToken).
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
	a.logins++
	a.saveState()
	a.log.Info("logged in to Vault", "identity", identity, "ttl_seconds", auth.LeaseDuration, "renewable", auth.Renewable,
		"policies", strings.Join(auth.Policies, ","), "pod_logins", a.logins)
	return b, nil
}

func (a *Agent) setToken(identity string, auth *api.SecretAuth) {
	now := a.now()
	t := &tokenState{auth: auth}
	if auth.LeaseDuration > 0 {
		ttl := time.Duration(auth.LeaseDuration) * time.Second
		t.renewAt = now.Add(jitter(ttl * 2 / 3))
		t.expires = now.Add(ttl)
	}
	a.tokens[identity] = t
	a.dirty = true
}

func (a *Agent) renewToken(ctx context.Context, identity string, t *tokenState) {
	b := a.backends[identity]
	want := t.auth.LeaseDuration
	var s *api.Secret
	err := errors.New("token is not renewable")
	if t.auth.Renewable {
		s, err = b.RenewToken(ctx, want)
	}
	now := a.now()
	if err != nil && !vaultRefused(err) && t.auth.Renewable && (t.expires.IsZero() || now.Before(t.expires)) {
		// Vault unreachable: the token still works, and a second login would leave two live
		// tokens. Try the renewal again soon.
		a.log.Warn("token renewal failed; will retry", "identity", identity, "error", err.Error())
		t.renewAt = now.Add(5 * time.Second)
		return
	}
	if err == nil && s != nil && s.Auth != nil && s.Auth.LeaseDuration >= want {
		auth := *s.Auth
		auth.ClientToken = t.auth.ClientToken
		a.setToken(identity, &auth)
		return
	}
	// Not renewable, gone, or capped by its max TTL: log in again now, while the current token
	// (when it still lives) and its leases still work.
	auth, lerr := b.Login(ctx)
	if lerr != nil {
		a.log.Warn("token renewal and new login failed; will retry", "identity", identity, "error", lerr.Error())
		t.renewAt = now.Add(5 * time.Second)
		return
	}
	b.SetToken(auth.ClientToken)
	a.setToken(identity, auth)
	a.logins++
	a.log.Info("logged in again", "identity", identity, "ttl_seconds", auth.LeaseDuration, "pod_logins", a.logins)
	// Vault revokes a token's leases when the token ends: fetch leased secrets again under the
	// new token while the old one, and its credentials, still live.
	a.refetchLeased(identity)
	a.saveState()
}

// vaultRefused reports an answer of Vault's that says the token cannot be renewed (Vault
// answers a token past its max TTL with a 500), as opposed to no answer or a Vault that is
// sealed, overloaded or between leaders, which a retry outlasts.
func vaultRefused(err error) bool {
	kind, _ := answerOf(err)
	return kind == refused
}

// checkToken asks Vault whether the identity's token still works, after a 403. A dead token
// (revoked, expired) is dropped so the next fetch logs in again, and the leases obtained with
// it, which Vault revoked with it, are fetched again.
func (a *Agent) checkToken(ctx context.Context, identity string) {
	if _, ok := a.tokens[identity]; !ok {
		return
	}
	_, err := a.backends[identity].LookupToken(ctx)
	if err == nil || !isPermanent(err) {
		return
	}
	a.log.Warn("the Vault token no longer works; logging in again", "identity", identity, "error", err.Error())
	delete(a.tokens, identity)
	a.backends[identity].SetToken("")
	a.refetchLeased(identity)
	a.dirty = true
}

// refetchLeased marks the identity's leased secrets to be fetched again at the next pass.
func (a *Agent) refetchLeased(identity string) {
	for _, e := range a.entries {
		if e.identity == identity && e.secret.LeaseID != "" {
			e.refetchAt, e.renewAt = a.now(), time.Time{}
		}
	}
}
