package agent

// KV version 2 paths: which mount a path is on and its KV version (asked of Vault once per
// mount), the data/ a KV v2 path gains, and the read that need not wait for the lookup.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// readKV reads p at the path its mount makes of it (kvPath) and says which path that was.
func (v *vaultBackend) readKV(ctx context.Context, p string) (string, *api.Secret, error) {
	p = strings.Trim(p, "/")
	if _, known := v.mountOf(p); !known && readsAsWritten(p) {
		return v.readBesideLookup(ctx, p)
	}
	path := v.kvPath(ctx, p)
	s, err := v.client.Logical().ReadWithContext(ctx, path)
	return path, s, err
}

// readsAsWritten reports a path whose second segment is data, like secret/data/app: kvPath
// keeps it whatever its mount's KV version when the mount is its first segment (on KV
// version 2 it names data/ already; any other mount reads paths as written). Only a KV
// version 2 mount at secret/data/ itself, or deeper, would rewrite it.
func readsAsWritten(p string) bool {
	parts := strings.SplitN(p, "/", 3)
	return len(parts) == 3 && parts[1] == "data" && parts[2] != ""
}

// readBesideLookup reads p while its mount is looked up, instead of after: a pod's first
// render waits for one Vault round trip per mount less, and Vault gets no request the
// agent would not send anyway. When the lookup finds p rewritten after all (a KV version 2
// mount below the first segment), the early answer was of another path of that KV mount,
// which holds no lease: it is dropped, and the rewritten path is read.
func (v *vaultBackend) readBesideLookup(ctx context.Context, p string) (string, *api.Secret, error) {
	type answer struct {
		s   *api.Secret
		err error
	}
	early := make(chan answer, 1)
	go func() {
		s, err := v.client.Logical().ReadWithContext(ctx, p)
		early <- answer{s, err}
	}()
	path := v.kvPath(ctx, p)
	a := <-early
	if path != p {
		a.s, a.err = v.client.Logical().ReadWithContext(ctx, path)
	}
	return path, a.s, a.err
}

// lookupOnce looks up the mount of p and remembers it. Reads run concurrently (prefetch):
// one lookup at a time, so paths on one mount ask Vault once and the others find it here.
func (v *vaultBackend) lookupOnce(ctx context.Context, p string) (mountInfo, bool) {
	v.lookupMu.Lock()
	defer v.lookupMu.Unlock()
	if m, ok := v.mountOf(p); ok {
		return m, true
	}
	m, err := v.lookupMount(ctx, p)
	if err != nil {
		return mountInfo{}, false
	}
	v.mu.Lock()
	v.mounts = append(v.mounts, m)
	v.mu.Unlock()
	return m, true
}

// kvPath inserts data/ into paths on KV version 2 mounts, as consul-template and Vault Agent
// do, so `secret "secret/app"` reads secret/data/app. Paths that already name data/,
// metadata/ or subkeys/ are kept. The mount's version is asked once per mount; when Vault
// will not say (old server, restricted token), the path is used as written.
func (v *vaultBackend) kvPath(ctx context.Context, p string) string {
	p = strings.Trim(p, "/")
	mount, ok := v.mountOf(p)
	if !ok {
		if mount, ok = v.lookupOnce(ctx, p); !ok {
			return p
		}
	}
	if !mount.kv2 {
		return p
	}
	base := strings.TrimSuffix(mount.path, "/")
	if p == base {
		return base + "/data"
	}
	rest := strings.TrimPrefix(p, base+"/")
	if strings.HasPrefix(rest, "data/") || strings.HasPrefix(rest, "metadata/") || strings.HasPrefix(rest, "subkeys/") {
		return p
	}
	return base + "/data/" + rest
}

type mountInfo struct {
	path string // with a trailing slash, e.g. "secret/"
	kv2  bool
}

func (v *vaultBackend) mountOf(p string) (mountInfo, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, m := range v.mounts {
		if strings.HasPrefix(p+"/", m.path) {
			return m, true
		}
	}
	return mountInfo{}, false
}

func (v *vaultBackend) lookupMount(ctx context.Context, p string) (mountInfo, error) {
	s, err := v.client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+p)
	if err != nil || s == nil {
		return mountInfo{}, fmt.Errorf("look up mount of %s: %v", p, err)
	}
	m := mountInfo{}
	m.path, _ = s.Data["path"].(string)
	if m.path == "" {
		return mountInfo{}, fmt.Errorf("look up mount of %s: no path in answer", p)
	}
	typ, _ := s.Data["type"].(string)
	if opts, ok := s.Data["options"].(map[string]any); ok {
		version, _ := opts["version"].(string)
		m.kv2 = version == "2" && typ == "kv"
	}
	return m, nil
}

// deletedKVv2 reports a KV version 2 secret whose latest version is deleted: Vault answers
// with metadata only, which must not render as an empty secret.
func deletedKVv2(s *api.Secret) bool {
	md, ok := s.Data["metadata"].(map[string]any)
	if !ok {
		return false
	}
	dt, _ := md["deletion_time"].(string)
	t, err := time.Parse(time.RFC3339, dt)
	return err == nil && time.Now().After(t)
}
