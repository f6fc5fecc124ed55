package agent

import (
	"context"
	"sync"

	"github.com/hashicorp/vault/api"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// prefetched is a read done ahead of a pass, for fetch to take as its own.
type prefetched struct {
	identity, path string
	// token is the identity's token the read was made with (empty with loginErr).
	token    string
	secret   *api.Secret
	err      error
	loginErr error
}

// prefetch reads at once the secrets the process's first pass is sure to read and does not
// hold (adopted from a previous agent of the pod): those its templates read with a literal path
// before any branch (sureReads), and the path of every output without a template of its own
// (its default template reads that path and nothing else). The files then wait for about one
// Vault round trip instead of one per secret (3 KV secrets at a pod's start: 4 round trips, now
// 2 with the KV mount lookup, 1 for paths that name data/). Everything around a read stays on
// this goroutine and in fetch's order: the path policy check, then the login (once per
// identity, as the first fetch would); only the reads run concurrently. fetch takes each
// answer, success or error, as if it had read it itself, so a path is still read once per pass
// and its error handled as before; an answer read with a token the identity no longer holds (a
// 403 made fetch drop it) is not taken: fetch logs in and reads again, as before.
func (a *Agent) prefetch(ctx context.Context, templates []boundTemplate) {
	type want struct {
		key, identity, path string
		b                   Backend
		token               string
	}
	var wants []*want
	seen := map[string]bool{}
	for _, t := range templates {
		if t.err != nil {
			continue
		}
		paths := []string{t.defaultPath}
		if t.defaultPath == "" {
			paths = sureReads(t.name, t.text) // parsed only when written by hand
		}
		for _, path := range paths {
			key := entryKey(t.identity, path, nil)
			if seen[key] || a.entries[key] != nil || a.prefetched[key] != nil {
				continue
			}
			seen[key] = true
			wants = append(wants, &want{key: key, identity: t.identity, path: path})
		}
	}
	if len(wants) < 2 {
		return // nothing to overlap: fetch reads it in turn
	}
	if a.prefetched == nil {
		a.prefetched = map[string]*prefetched{}
	}
	loginFailed := map[string]bool{}
	var todo []*want
	for _, w := range wants {
		if loginFailed[w.identity] || a.cfg.CheckPath(w.identity, w.path, agentconfig.OperationOf(w.path, false)) != nil {
			continue // fetch refuses it without contacting Vault, or logs in itself
		}
		b, err := a.login(ctx, w.identity)
		if err != nil {
			// The first fetch of this identity reports this login's failure; later ones
			// try to log in again, as they did without prefetching.
			loginFailed[w.identity] = true
			a.prefetched[w.key] = &prefetched{identity: w.identity, path: w.path, loginErr: err}
			continue
		}
		w.b, w.token = b, a.tokens[w.identity].auth.ClientToken
		todo = append(todo, w)
	}
	results := make([]prefetched, len(todo))
	var wg sync.WaitGroup
	for i, w := range todo {
		wg.Go(func() {
			s, err := w.b.Read(ctx, w.path)
			results[i] = prefetched{identity: w.identity, path: w.path, token: w.token, secret: s, err: err}
		})
	}
	wg.Wait()
	for i, w := range todo {
		a.prefetched[w.key] = &results[i]
	}
}

// takePrefetched returns (and forgets) the answer prefetch read for key, if it was read with
// the token the identity holds now.
func (a *Agent) takePrefetched(identity, key string) (*prefetched, bool) {
	p, ok := a.prefetched[key]
	if !ok {
		return nil, false
	}
	delete(a.prefetched, key)
	if p.loginErr != nil {
		return p, true
	}
	t, ok := a.tokens[identity]
	if !ok || t.auth == nil || t.auth.ClientToken != p.token {
		// Read with a token since dropped: Vault revoked any lease of it with the token.
		return nil, false
	}
	return p, true
}

// keepPrefetched caches what prefetch read and the pass did not take (it stopped early, or
// a template failed before reading): a lease obtained is then renewed, saved for the next
// process and revoked on shutdown like any other. Nothing here contacts Vault.
func (a *Agent) keepPrefetched() {
	for key, p := range a.prefetched {
		if p, ok := a.takePrefetched(p.identity, key); ok && p.loginErr == nil && p.err == nil && p.secret != nil {
			a.remember(p.identity, p.path, nil, key, p.secret)
		}
	}
}
