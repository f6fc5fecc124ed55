package agentconfig

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

const validConfig = `{"version":1,"mode":"sidecar","identities":[{"name":"default","method":"kubernetes","authPath":"auth/kubernetes","role":"app","address":"https://vault:8200"}],
"secrets":[{"name":"db","identity":"default","path":"secret/data/db","file":"db.json","perms":"0640"}],
"secretsDir":"/vault/secrets","homeDir":"/vault/home","serviceAccountTokenFile":"/t","refreshInterval":"5m"}`

func TestParseRejectsWithReason(t *testing.T) {
	for _, tc := range []struct{ name, from, to, want string }{
		{"version", `"version":1`, `"version":9`, "version 9 is not supported"},
		{"version 0", `"version":1`, `"version":0`, "version 0 is not supported"},
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
		checkSameAsReflection(t, c)
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("marshal a parsed config: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("a parsed config does not parse after Marshal: %v\n%s", err, out)
		}
		if out2, _ := again.Marshal(); !bytes.Equal(out, out2) {
			t.Fatalf("Marshal, Parse, Marshal changed the config:\n%s\n%s", out, out2)
		}
	})
}

// fullConfig is a config whose every defaultable field holds its default.
func fullConfig() *Config {
	return &Config{
		Version: Version, Mode: ModeSidecar,
		Identities: []Identity{{Name: DefaultIdentity, Method: MethodKubernetes, AuthPath: DefaultKubernetesAuthPath, Role: "app", Address: "https://vault:8200"}},
		Secrets:    []Secret{{Name: "db", Identity: DefaultIdentity, Path: "secret/data/db", File: "db", Perms: DefaultPerms}},
		SecretsDir: SecretsDir, HomeDir: HomeDir, ServiceAccountTokenFile: ServiceAccountTokenFile,
		RefreshInterval: DefaultRefreshInterval,
	}
}

func TestMarshalLeavesOutDefaultsAndParsePutsThemBack(t *testing.T) {
	c := fullConfig()
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"version":2,"identities":[{"name":"default","role":"app","address":"https://vault:8200"}],"secrets":[{"name":"db","path":"secret/data/db"}]}`
	if string(out) != want {
		t.Fatalf("Marshal:\n got %s\nwant %s", out, want)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("Parse(Marshal(c)) = %+v, want %+v", back, c)
	}
}

// Values that differ from a default, including the zero values that an absent field would not
// give back (mode 0000), survive the round trip.
func TestMarshalKeepsWhatDiffersFromTheDefault(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // in Marshal's output
	}{
		{"init mode", func(c *Config) { c.Mode = ModeInit }, `"mode":"init"`},
		{"perms 0000", func(c *Config) { c.Secrets[0].Perms = 0 }, `"perms":"0000"`},
		{"perms 0400", func(c *Config) { c.Secrets[0].Perms = 0o400 }, `"perms":"0400"`},
		{"file", func(c *Config) { c.Secrets[0].File = "db.json" }, `"file":"db.json"`},
		{"identity", func(c *Config) {
			c.Identities = append(c.Identities, Identity{Name: "pki", Method: MethodKubernetes, AuthPath: DefaultKubernetesAuthPath, Role: "r", Address: "https://v:8200"})
			c.Secrets[0].Identity = "pki"
		}, `"identity":"pki"`},
		{"auth path", func(c *Config) { c.Identities[0].AuthPath = "auth/k8s-prod" }, `"authPath":"auth/k8s-prod"`},
		{"jwt at its default path", func(c *Config) { c.Identities[0].Method, c.Identities[0].AuthPath = MethodJWT, DefaultJWTAuthPath }, `"method":"jwt","role"`},
		{"jwt at the kubernetes default path", func(c *Config) { c.Identities[0].Method = MethodJWT }, `"method":"jwt","authPath":"auth/kubernetes"`},
		{"refresh", func(c *Config) { c.RefreshInterval = Duration(time.Minute) }, `"refreshInterval":"1m0s"`},
		{"secrets dir", func(c *Config) { c.SecretsDir = "/etc/secrets" }, `"secretsDir":"/etc/secrets"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fullConfig()
			tc.edit(c)
			out, err := c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("Marshal: %s\nwant it to contain %s", out, tc.want)
			}
			back, err := Parse(out)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, c) {
				t.Fatalf("Parse(Marshal(c)) = %+v, want %+v", back, c)
			}
		})
	}
}

// An agent reads configs of version 1, where every field is written, as they were.
func TestParseReadsVersion1(t *testing.T) {
	c, err := Parse([]byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Secrets[0]
	if c.Version != 1 || c.Mode != ModeSidecar || s.File != "db.json" || s.Perms != 0o640 || c.ServiceAccountTokenFile != "/t" || c.Identities[0].AuthPath != DefaultKubernetesAuthPath {
		t.Fatalf("version 1 config read as %+v", c)
	}
}
