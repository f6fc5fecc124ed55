package agentconfig

import (
	"reflect"
	"strings"
	"testing"
)

func TestEnvAnnotations(t *testing.T) {
	req, err := FromAnnotations(map[string]string{
		AnnotationRole:                 "app",
		Prefix + "env-DB_PASSWORD":     "/database/creds/app/#password",
		Prefix + "env-app.api-key":     "secret/data/app#api-key",
		Prefix + "env-URL":             `https://{{ with secret "kv/app" }}{{ .Data.host }}{{ end }}`,
		AnnotationEnvStyle:             "exec",
		AnnotationEnvOnChange:          "restart",
		Prefix + "secret-unrelated-db": "database/creds/app",
	}, defaults)
	if err != nil {
		t.Fatal(err)
	}
	want := &Env{File: EnvFile, Versioned: true, Vars: []EnvVar{
		{Name: "DB_PASSWORD", Identity: DefaultIdentity, Path: "database/creds/app", Key: "password"},
		{Name: "URL", Identity: DefaultIdentity, Template: `https://{{ with secret "kv/app" }}{{ .Data.host }}{{ end }}`},
		{Name: "app.api-key", Identity: DefaultIdentity, Path: "secret/data/app", Key: "api-key"},
	}}
	if !reflect.DeepEqual(req.Agent.Env, want) {
		t.Errorf("env = %+v\nwant  %+v", req.Agent.Env, want)
	}
	if req.EnvStyle != EnvStyleExec || req.EnvOnChange != EnvOnChangeRestart {
		t.Errorf("style %q on-change %q", req.EnvStyle, req.EnvOnChange)
	}
	b, err := req.Agent.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b)
	if err != nil || !reflect.DeepEqual(back.Env, want) {
		t.Fatalf("round trip: %v %+v", err, back)
	}

	// Env variables alone are a request.
	req, err = FromAnnotations(map[string]string{AnnotationRole: "app", Prefix + "env-A": "kv/a#k"}, defaults)
	if err != nil || req == nil || len(req.Agent.Secrets) != 0 || len(req.Agent.Env.Vars) != 1 {
		t.Fatalf("env only: %v %+v", err, req)
	}
}

func TestEnvAnnotationsInvalid(t *testing.T) {
	cases := []struct {
		name string
		ann  map[string]string
		want string
	}{
		{"no key", map[string]string{Prefix + "env-A": "kv/a"}, `annotation vault-injector.io/env-A="kv/a" is invalid: expected <vault path>#<key>`},
		{"empty key", map[string]string{Prefix + "env-A": "kv/a#"}, "expected <vault path>#<key>"},
		{"traversal", map[string]string{Prefix + "env-A": "kv/../sys#k"}, "expected <vault path>#<key>"},
		{"bad name", map[string]string{Prefix + "env-A$B": "kv/a#k"}, "<NAME> is letters, digits"},
		{"name too long", map[string]string{Prefix + "env-" + strings.Repeat("A", 60): "kv/a#k"}, "at most 63 characters"},
		{"bad style", map[string]string{Prefix + "env-A": "kv/a#k", AnnotationEnvStyle: "auto"}, `expected "file" (env[].valueFrom.fileKeyRef`},
		{"bad on-change", map[string]string{Prefix + "env-A": "kv/a#k", AnnotationEnvOnChange: "reload"}, `expected "none" or "restart"`},
		{"style without vars", map[string]string{Prefix + "secret-a": "kv/a", AnnotationEnvStyle: "exec"}, "unless vault-injector.io/env-<NAME> annotations ask for variables"},
		{"restart in init mode", map[string]string{Prefix + "env-A": "kv/a#k", AnnotationEnvOnChange: "restart", AnnotationMode: "init"}, "restart needs an agent running beside the app"},
		{"version name", map[string]string{Prefix + "env-" + EnvVersionVar: "kv/a#k"}, "is the injector's own"},
	}
	for _, c := range cases {
		ann := map[string]string{AnnotationRole: "app"}
		for k, v := range c.ann {
			ann[k] = v
		}
		_, err := FromAnnotations(ann, defaults)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

// A variable reads through the identity env-<NAME>-identity names; the default identity then
// needs no role unless something else uses it.
func TestEnvIdentity(t *testing.T) {
	req, err := FromAnnotations(map[string]string{
		Prefix + "identity-pki-role":  "issuer",
		Prefix + "env-CERT":           `{{ with secret "pki/issue/web" "common_name=a" }}{{ .Data.certificate }}{{ end }}`,
		Prefix + "env-CERT-identity":  "pki",
		Prefix + "env-TOKEN":          "kv/app#token",
		Prefix + "env-TOKEN-identity": "pki",
	}, defaults)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range req.Agent.Env.Vars {
		if v.Identity != "pki" {
			t.Errorf("variable %s reads through %q, want pki", v.Name, v.Identity)
		}
	}
	if len(req.Agent.Identities) != 1 || req.Agent.Identities[0].Name != "pki" {
		t.Errorf("identities %+v: want only pki", req.Agent.Identities)
	}
	for _, c := range []struct {
		ann  map[string]string
		want string
	}{
		{map[string]string{AnnotationRole: "r", Prefix + "env-A": "kv/a#k", Prefix + "env-A-identity": "nope"}, `env-A-identity="nope" is invalid: expected an identity defined by`},
		{map[string]string{AnnotationRole: "r", Prefix + "secret-a": "kv/a", Prefix + "env-B-identity": "default"}, "no value unless vault-injector.io/env-B names the variable"},
		{map[string]string{Prefix + "env-A": "kv/a#k"}, "annotation vault-injector.io/role"},
	} {
		if _, err := FromAnnotations(c.ann, defaults); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.ann, err, c.want)
		}
	}
}
