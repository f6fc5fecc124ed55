package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// mountStandIn answers the mount lookup of a Vault whose one mount is mount (KV version 2)
// only once release is closed, and KV reads of any path with the path itself; it records the
// order of the requests.
type mountStandIn struct {
	mount   string
	release chan struct{}

	mu   sync.Mutex
	seen []string
}

func (m *mountStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/v1/")
	m.mu.Lock()
	m.seen = append(m.seen, p)
	m.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if strings.HasPrefix(p, "sys/internal/ui/mounts/") {
		<-m.release
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"path": m.mount, "type": "kv", "options": map[string]any{"version": "2"}}})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"data": map[string]any{"path": p}, "metadata": map[string]any{"version": 1}}})
}

func (m *mountStandIn) requests() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.seen...)
}

func standInBackend(t *testing.T, m *mountStandIn) *vaultBackend {
	t.Helper()
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	b, err := newVaultBackend(agentconfig.Identity{Name: agentconfig.DefaultIdentity, Method: agentconfig.MethodKubernetes,
		AuthPath: agentconfig.DefaultKubernetesAuthPath, Role: "app", Address: srv.URL}, filepath.Join(t.TempDir(), "token"))
	if err != nil {
		t.Fatal(err)
	}
	b.SetToken("t")
	return b
}

// A path that names data/ reads the same on any mount at its first segment: the read goes out
// while the mount is looked up. The stand-in answers the lookup only after it has seen the
// read, so a read that waited for the lookup would never be sent.
func TestReadOfDataPathGoesOutBesideTheMountLookup(t *testing.T) {
	m := &mountStandIn{mount: "secret/", release: make(chan struct{})}
	b := standInBackend(t, m)
	readBeforeAnswer := make(chan bool, 1)
	go func() {
		defer close(m.release)
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if indexOf(m.requests(), "secret/data/app") >= 0 {
				readBeforeAnswer <- true
				return
			}
		}
		readBeforeAnswer <- false
	}()
	s, err := b.Read(context.Background(), "secret/data/app")
	if err != nil {
		t.Fatal(err)
	}
	if !<-readBeforeAnswer {
		t.Fatal("secret/data/app was not read while the mount lookup was unanswered")
	}
	got := m.requests()
	if len(got) != 2 || indexOf(got, "secret/data/app") < 0 || indexOf(got, "sys/internal/ui/mounts/secret/data/app") < 0 {
		t.Fatalf("requests %v, want the mount lookup and one read of secret/data/app", got)
	}
	if p := s.Data["data"].(map[string]any)["path"]; p != "secret/data/app" {
		t.Errorf("answer of %v, want secret/data/app's", p)
	}
	// The mount is known now: the next read of it asks nothing else.
	if _, err := b.Read(context.Background(), "secret/data/other"); err != nil {
		t.Fatal(err)
	}
	if got := m.requests(); len(got) != 3 || got[2] != "secret/data/other" {
		t.Errorf("requests %v, want one more: the read of secret/data/other", got)
	}
}

// A KV version 2 mount at secret/data/ rewrites secret/data/app to secret/data/data/app: the
// early read is dropped and the rewritten path read, and its answer returned.
func TestReadOfDataPathOnDeeperKVMountIsRewritten(t *testing.T) {
	m := &mountStandIn{mount: "secret/data/", release: make(chan struct{})}
	close(m.release)
	b := standInBackend(t, m)
	s, err := b.Read(context.Background(), "secret/data/app")
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Data["data"].(map[string]any)["path"]; p != "secret/data/data/app" {
		t.Errorf("answer of %v, want secret/data/data/app's", p)
	}
	if got := m.requests(); indexOf(got, "secret/data/data/app") < 0 {
		t.Errorf("requests %v: the rewritten path was not read", got)
	}
}

// A path without data/ is rewritten by what the lookup says, so it is read after it.
func TestReadOfShortPathWaitsForTheMountLookup(t *testing.T) {
	m := &mountStandIn{mount: "secret/", release: make(chan struct{})}
	close(m.release)
	b := standInBackend(t, m)
	if _, err := b.Read(context.Background(), "secret/app"); err != nil {
		t.Fatal(err)
	}
	got := m.requests()
	if len(got) != 2 || !strings.HasPrefix(got[0], "sys/internal/ui/mounts/") || got[1] != "secret/data/app" {
		t.Errorf("requests %v, want the mount lookup, then secret/data/app", got)
	}
}

func TestReadsAsWritten(t *testing.T) {
	for p, want := range map[string]bool{
		"secret/data/app": true, "kv/data/team/app": true,
		"secret/app": false, "secret/data": false, "secret/data/": false, "database/creds/app": false,
		"secret/metadata/app": false, "team/secret/data/app": false,
	} {
		if got := readsAsWritten(p); got != want {
			t.Errorf("readsAsWritten(%q) = %v, want %v", p, got, want)
		}
	}
}

func indexOf(ss []string, s string) int {
	for i, v := range ss {
		if v == s {
			return i
		}
	}
	return -1
}
