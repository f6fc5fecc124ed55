package agentconfig

import (
	"reflect"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
)

// reflectCompact is Marshal by reflection: encoding/json/v2 on a copy of c whose defaults are
// cleared (the omitzero members then drop out). appendJSON must write the same bytes.
func reflectCompact(c *Config) ([]byte, error) {
	w := *c
	w.Version = Version
	if w.Mode == ModeSidecar {
		w.Mode = ""
	}
	w.SecretsDir = omitDefault(w.SecretsDir, SecretsDir)
	w.HomeDir = omitDefault(w.HomeDir, HomeDir)
	w.ServiceAccountTokenFile = omitDefault(w.ServiceAccountTokenFile, ServiceAccountTokenFile)
	if w.RefreshInterval == DefaultRefreshInterval {
		w.RefreshInterval = 0
	}
	w.Identities = make([]Identity, len(c.Identities))
	for i, id := range c.Identities {
		id.AuthPath = omitDefault(id.AuthPath, defaultAuthPathOf(id.Method))
		id.Method = omitDefault(id.Method, MethodKubernetes)
		w.Identities[i] = id
	}
	w.Secrets = make([]Secret, len(c.Secrets))
	for i, s := range c.Secrets {
		s.Identity = omitDefault(s.Identity, DefaultIdentity)
		s.File = omitDefault(s.File, s.Name)
		w.Secrets[i] = s
	}
	return jsonv2.Marshal(&w, jsonv2.Deterministic(true))
}

func checkSameAsReflection(t *testing.T, c *Config) {
	t.Helper()
	got, err := c.Marshal()
	want, werr := reflectCompact(c)
	if (err == nil) != (werr == nil) {
		t.Fatalf("Marshal error %v, encoding/json/v2 error %v", err, werr)
	}
	if err == nil && string(got) != string(want) {
		t.Fatalf("Marshal writes\n%s\nencoding/json/v2 writes\n%s", got, want)
	}
}

// Every member, set to a value that is not its default, is written as encoding/json/v2 writes it.
func TestMarshalIsEncodingJSONv2(t *testing.T) {
	yes := true
	every := func(c *Config) {
		c.Mode = ModeInit
		c.Identities = append(c.Identities, Identity{Name: "x", Method: MethodJWT, AuthPath: "auth/j", Role: "r <&> \"q\"", Address: "https://v:1",
			Namespace: "ns", TLSServerName: "v.example", TLSSkipVerify: true, CACertFile: CAFile, Audience: "aud", TokenFile: ServiceAccountTokenDir + "/token-1"})
		c.Secrets = append(c.Secrets, Secret{Name: "t", Identity: "x", Path: "p", Template: "{{ with secret \"p\" }}\u2028\t{{ end }}", File: "d/t.txt", Perms: 0})
		c.TemplatesDir, c.TemplatesIdentity = TemplatesDir, "x"
		c.SecretsDir, c.HomeDir, c.ServiceAccountTokenFile = "/s", "/h", "/t"
		c.RefreshInterval = Duration(90 * 1e9)
		c.RevokeOnShutdown = &yes
		c.Env = &Env{}
		c.Notify = &Notify{Signal: "SIGHUP", Process: "nginx", Command: []string{"a", "b"}}
		c.PathRules = []PathRule{{}}
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"defaults", func(*Config) {}},
		{"every member", every},
		{"invalid UTF-8", func(c *Config) { c.Secrets[0].Template = "\xff" }},
		{"zero values", func(c *Config) { *c = Config{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fullConfig()
			tc.edit(c)
			checkSameAsReflection(t, c)
		})
	}
	// A member added to the structs must be set above, so it is compared too.
	c := fullConfig()
	every(c)
	for _, v := range []any{*c, c.Identities[1], c.Secrets[1]} {
		rv := reflect.ValueOf(v)
		for i := range rv.NumField() {
			if f := rv.Type().Field(i); rv.Field(i).IsZero() && f.Name != "Perms" { // perms 0000 on purpose
				t.Errorf("%s.%s is not set in the every-member case", rv.Type().Name(), f.Name)
			}
		}
	}
}
