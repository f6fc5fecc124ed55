package agentconfig

import (
	"strings"
	"testing"
)

const validConfig = `{"version":1,"mode":"sidecar","identities":[{"name":"default","method":"kubernetes","authPath":"auth/kubernetes","role":"app","address":"https://vault:8200"}],
"secrets":[{"name":"db","identity":"default","path":"secret/data/db","file":"db.json","perms":"0640"}],
"secretsDir":"/vault/secrets","homeDir":"/vault/home","serviceAccountTokenFile":"/t","refreshInterval":"5m"}`

func TestParseRejectsWithReason(t *testing.T) {
	for _, tc := range []struct{ name, from, to, want string }{
		{"version", `"version":1`, `"version":9`, "version 9 is not supported"},
		{"mode", `"mode":"sidecar"`, `"mode":"daemon"`, `mode "daemon": expected`},
		{"perms", `"perms":"0640"`, `"perms":"rw"`, "octal"},
		{"traversal", `"file":"db.json"`, `"file":"../db.json"`, `file "../db.json"`},
		{"identity", `"identity":"default"`, `"identity":"other"`, `unknown identity "other"`},
		{"refresh", `"refreshInterval":"5m"`, `"refreshInterval":"10ms"`, "below the minimum"},
		{"duration", `"refreshInterval":"5m"`, `"refreshInterval":5`, "duration must be a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(validConfig, tc.from, tc.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := Parse([]byte(validConfig)); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
}

// FuzzParse: any bytes give a valid config or an error, never a panic; what parses survives a
// round trip through Marshal.
func FuzzParse(f *testing.F) {
	f.Add([]byte(validConfig))
	f.Add([]byte(`{}`))
	f.Add([]byte(strings.Replace(validConfig, `"address":"https://vault:8200"}]`, `"address":"https://vault:8200"},{"name":"b","method":"jwt","authPath":"auth/jwt","role":"b","address":"https://v:8200","audience":"x","tokenFile":"/var/run/secrets/vault-injector/token-1"}]`, 1)))
	f.Add([]byte(`{"version":1,"perms":"07777"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("marshal a parsed config: %v", err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("a parsed config does not parse after Marshal: %v\n%s", err, out)
		}
	})
}
