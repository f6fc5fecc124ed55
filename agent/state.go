package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/vault/api"
)

// stateFile, in the home volume (memory, mounted by our containers only), carries what one
// agent process obtained to the next process of the same pod: the init container's to the
// classic sidecar, and a crashed or OOM-killed sidecar's to its restart. Adopting it is what
// keeps a pod at one token per identity and one lease per secret: without it each new process
// logs in again and issues new credentials, overwriting the files the app read while the old
// leases run on unrenewed.
const stateFile = "state.json"

type agentState struct {
	// Logins counts every Vault login of this pod's agents.
	Logins  int                   `json:"logins"`
	Tokens  map[string]savedToken `json:"tokens,omitempty"`
	Secrets []savedSecret         `json:"secrets,omitempty"`
}

type savedToken struct {
	Auth    *api.SecretAuth `json:"auth"`
	RenewAt time.Time       `json:"renewAt"`
	Expires time.Time       `json:"expires"`
}

// savedSecret is a leased entry of the cache: a secret whose fetching issued something
// (a database user, a certificate) that must not be issued twice.
type savedSecret struct {
	Identity  string         `json:"identity"`
	Path      string         `json:"path"`
	Args      map[string]any `json:"args,omitempty"`
	Secret    *Secret        `json:"secret"`
	RenewAt   time.Time      `json:"renewAt"`
	RefetchAt time.Time      `json:"refetchAt"`
	LeaseEnd  time.Time      `json:"leaseEnd"`
}

// saveState writes the state file when tokens or leases changed.
func (a *Agent) saveState() {
	if !a.dirty || a.cfg.HomeDir == "" {
		return
	}
	st := agentState{Logins: a.logins, Tokens: map[string]savedToken{}}
	for id, t := range a.tokens {
		st.Tokens[id] = savedToken{Auth: t.auth, RenewAt: t.renewAt, Expires: t.expires}
	}
	for _, e := range a.entries {
		if e.leased() {
			st.Secrets = append(st.Secrets, savedSecret{Identity: e.identity, Path: e.path, Args: e.data, Secret: e.secret,
				RenewAt: e.renewAt, RefetchAt: e.refetchAt, LeaseEnd: e.leaseEnd})
		}
	}
	b, err := json.Marshal(st)
	if err == nil {
		_, err = writeFile(a.cfg.HomeDir, stateFile, b, 0o600)
	}
	if err != nil {
		a.log.Warn("could not keep the agent state in the home volume; a restarted agent will log in again", "error", err.Error())
		return
	}
	a.dirty = false
}

// removeState forgets everything after the token was revoked.
func (a *Agent) removeState() {
	if err := os.Remove(filepath.Join(a.cfg.HomeDir, stateFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.log.Warn("could not remove agent state", "error", err.Error())
	}
}

func (a *Agent) loadState() (*agentState, error) {
	raw, err := os.ReadFile(filepath.Join(a.cfg.HomeDir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	// Numbers as Vault sent them, so an adopted secret renders byte for byte as before.
	dec.UseNumber()
	var st agentState
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", stateFile, err)
	}
	return &st, nil
}

// adopt takes over the tokens and leases of this pod's previous agent process. A token Vault
// no longer accepts is dropped with the leases obtained under it (Vault revoked them with it);
// a lease that cannot be renewed is dropped and fetched anew. When Vault cannot be reached the
// saved expiry times decide.
func (a *Agent) adopt(ctx context.Context) {
	st, err := a.loadState()
	if err != nil {
		a.log.Warn("ignoring unreadable agent state; logging in afresh", "error", err.Error())
		return
	}
	if st == nil {
		return
	}
	a.logins = st.Logins
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	now := a.now()
	for id, saved := range st.Tokens {
		b, ok := a.backends[id]
		if !ok || saved.Auth == nil || saved.Auth.ClientToken == "" || !saved.Expires.IsZero() && !now.Before(saved.Expires) {
			continue
		}
		b.SetToken(saved.Auth.ClientToken)
		if _, err := b.LookupToken(ctx); err != nil && isPermanent(err) {
			b.SetToken("")
			a.log.Info("the previous agent's Vault token no longer works; logging in afresh", "identity", id)
			continue
		}
		a.tokens[id] = &tokenState{auth: saved.Auth, renewAt: saved.RenewAt, expires: saved.Expires}
	}
	leases := 0
	for _, s := range st.Secrets {
		if _, ok := a.tokens[s.Identity]; !ok || s.Secret == nil || !s.LeaseEnd.IsZero() && !now.Before(s.LeaseEnd) {
			continue
		}
		if s.Secret.Data == nil {
			s.Secret.Data = map[string]any{}
		}
		e := &entry{identity: s.Identity, path: s.Path, data: s.Args, secret: s.Secret,
			renewAt: s.RenewAt, refetchAt: s.RefetchAt, leaseEnd: s.LeaseEnd}
		key := s.Identity + "\x00" + cacheKey(s.Path, s.Args)
		a.entries[key] = e
		if e.secret.LeaseID != "" && e.secret.Renewable && e.refetchAt.IsZero() {
			// Renewing proves the lease still lives (and restarts its clock).
			a.renewLease(ctx, key, e)
		}
		if _, ok := a.entries[key]; ok {
			leases++
		}
	}
	a.dirty = true
	a.saveState()
	a.log.Info("adopted the state of this pod's previous agent", "tokens", len(a.tokens), "leased_secrets", leases, "pod_logins", a.logins)
}
