package patch

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// TestTokenPerAudienceNotMemoised: one Builder serves a pod whose identity asks for its own
// token audience between two pods that do not, with the same ConfigMaps (the memo's key): the
// extra projected token appears only in that pod's volumes.
func TestTokenPerAudienceNotMemoised(t *testing.T) {
	d := agentconfig.Defaults{Address: "https://vault:8200", AuthPath: "auth/kubernetes", RefreshInterval: time.Minute, SecretsPath: agentconfig.SecretsDir}
	request := func(ann map[string]string) *agentconfig.Request {
		t.Helper()
		ann[agentconfig.AnnotationRole] = "app"
		ann[agentconfig.Prefix+"secret-a"] = "secret/a"
		req, err := agentconfig.FromAnnotations(ann, d)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	plain := request(map[string]string{})
	withAud := request(map[string]string{agentconfig.Prefix + "identity-pki-role": "pki", agentconfig.Prefix + "identity-pki-token-audience": "vault-pki"})
	B := NewBuilder(Settings{AgentImage: "agent:1", Style: StyleNative, TokenAudience: "vault", TokenExpirationSeconds: 600})
	tokenVolume := func(req *agentconfig.Request) string {
		t.Helper()
		pod, err := Decode([]byte(`{"spec":{"containers":[{"name":"app"}]}}`))
		if err != nil {
			t.Fatal(err)
		}
		ops, err := B.Build(pod, req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(ops)
		i := strings.Index(string(b), `"name":"`+TokenVolume+`"`)
		if i < 0 {
			t.Fatalf("no token volume in %s", b)
		}
		return string(b[i:min(len(b), i+400)])
	}
	for i, tc := range []struct {
		req      *agentconfig.Request
		extra    bool
		describe string
	}{{plain, false, "plain"}, {withAud, true, "audience vault-pki"}, {plain, false, "plain again"}} {
		v := tokenVolume(tc.req)
		if got := strings.Contains(v, `"audience":"vault-pki"`) && strings.Contains(v, `"path":"token-1"`); got != tc.extra {
			t.Errorf("pod %d (%s): token-1 for vault-pki projected %v, want %v: %s", i, tc.describe, got, tc.extra, v)
		}
		if !strings.Contains(v, `"audience":"vault"`) || !strings.Contains(v, `"path":"token"`) {
			t.Errorf("pod %d (%s): the webhook's token is missing: %s", i, tc.describe, v)
		}
	}
}
