package agentconfig

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestFromAnnotationsIdentities: named identities, what they inherit, which output renders
// with which identity, and the token file each audience gets.
func TestFromAnnotationsIdentities(t *testing.T) {
	type want struct {
		ids     []Identity
		secrets map[string]string // output name -> identity
		tmplID  string
	}
	for _, tc := range []struct {
		name string
		ann  map[string]string
		want want
	}{
		{"two identities, each output names its own",
			map[string]string{
				AnnotationRole:                    "app",
				Prefix + "identity-pki-role":      "pki-issuer",
				Prefix + "identity-pki-auth-path": "k8s-pki",
				Prefix + "secret-a":               "secret/a",
				Prefix + "secret-b":               "secret/b",
				Prefix + "secret-b-identity":      "pki",
			},
			want{ids: []Identity{
				{Name: DefaultIdentity, Method: MethodKubernetes, AuthPath: "auth/kubernetes", Role: "app", Address: "https://vault:8200"},
				{Name: "pki", Method: MethodKubernetes, AuthPath: "auth/k8s-pki", Role: "pki-issuer", Address: "https://vault:8200"},
			}, secrets: map[string]string{"a": DefaultIdentity, "b": "pki"}}},
		{"no default role when every output names another identity; the template names it by template-<name>-identity",
			map[string]string{
				Prefix + "identity-a-role":            "role-a",
				Prefix + "identity-b-role":            "role-b",
				Prefix + "identity-b-address":         "https://other-vault:8200",
				Prefix + "identity-b-namespace":       "team-b",
				Prefix + "secret-x":                   "secret/x",
				Prefix + "secret-x-identity":          "a",
				Prefix + "template-y":                 `{{ with secret "secret/y" }}{{ .Data.v }}{{ end }}`,
				Prefix + "template-y-identity":        "b",
				AnnotationNamespace:                   "team-default",
				AnnotationTLSServerName:               "vault.internal",
				Prefix + "identity-a-auth-type":       "jwt",
				Prefix + "identity-a-tls-server-name": "a.vault.internal",
			},
			want{ids: []Identity{
				{Name: "a", Method: MethodJWT, AuthPath: "auth/jwt", Role: "role-a", Address: "https://vault:8200", Namespace: "team-default", TLSServerName: "a.vault.internal"},
				{Name: "b", Method: MethodKubernetes, AuthPath: "auth/kubernetes", Role: "role-b", Address: "https://other-vault:8200", Namespace: "team-b", TLSServerName: "vault.internal"},
			}, secrets: map[string]string{"x": "a", "y": "b"}}},
		{"jwt default identity: auth/jwt unless auth-path says otherwise",
			map[string]string{AnnotationRole: "app", AnnotationAuthType: "jwt", Prefix + "secret-a": "secret/a"},
			want{ids: []Identity{{Name: DefaultIdentity, Method: MethodJWT, AuthPath: "auth/jwt", Role: "app", Address: "https://vault:8200"}},
				secrets: map[string]string{"a": DefaultIdentity}}},
		{"jwt with an explicit mount",
			map[string]string{AnnotationRole: "app", AnnotationAuthType: "jwt", AnnotationAuthPath: "jwt-k8s", Prefix + "secret-a": "secret/a"},
			want{ids: []Identity{{Name: DefaultIdentity, Method: MethodJWT, AuthPath: "auth/jwt-k8s", Role: "app", Address: "https://vault:8200"}},
				secrets: map[string]string{"a": DefaultIdentity}}},
		{"audiences: one token file per distinct audience, in audience order",
			map[string]string{
				AnnotationRole:                       "app",
				AnnotationTokenAudience:              "vault-b",
				Prefix + "identity-x-role":           "rx",
				Prefix + "identity-x-token-audience": "vault-a",
				Prefix + "identity-y-role":           "ry",
				Prefix + "identity-y-token-audience": "vault-b",
				Prefix + "identity-z-role":           "rz",
				Prefix + "secret-a":                  "secret/a",
			},
			want{ids: []Identity{
				{Name: DefaultIdentity, Method: MethodKubernetes, AuthPath: "auth/kubernetes", Role: "app", Address: "https://vault:8200", Audience: "vault-b", TokenFile: ServiceAccountTokenDir + "/token-2"},
				{Name: "x", Method: MethodKubernetes, AuthPath: "auth/kubernetes", Role: "rx", Address: "https://vault:8200", Audience: "vault-a", TokenFile: ServiceAccountTokenDir + "/token-1"},
				{Name: "y", Method: MethodKubernetes, AuthPath: "auth/kubernetes", Role: "ry", Address: "https://vault:8200", Audience: "vault-b", TokenFile: ServiceAccountTokenDir + "/token-2"},
				{Name: "z", Method: MethodKubernetes, AuthPath: "auth/kubernetes", Role: "rz", Address: "https://vault:8200"},
			}, secrets: map[string]string{"a": DefaultIdentity}}},
		{"templates ConfigMap with its own identity",
			map[string]string{
				Prefix + "identity-t-role":           "rt",
				AnnotationTemplatesConfigMap:         "tmpl",
				AnnotationTemplatesConfigMapIdentity: "t",
			},
			want{ids: []Identity{{Name: "t", Method: MethodKubernetes, AuthPath: "auth/kubernetes", Role: "rt", Address: "https://vault:8200"}},
				secrets: map[string]string{}, tmplID: "t"}},
		{"an identity id with dashes and a field-like word",
			map[string]string{
				AnnotationRole:                       "app",
				Prefix + "identity-shared-role-role": "r",
				Prefix + "secret-a":                  "secret/a",
				Prefix + "secret-a-identity":         "shared-role",
			},
			want{ids: []Identity{
				{Name: DefaultIdentity, Method: MethodKubernetes, AuthPath: "auth/kubernetes", Role: "app", Address: "https://vault:8200"},
				{Name: "shared-role", Method: MethodKubernetes, AuthPath: "auth/kubernetes", Role: "r", Address: "https://vault:8200"},
			}, secrets: map[string]string{"a": "shared-role"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := FromAnnotations(tc.ann, defaults)
			if err != nil {
				t.Fatal(err)
			}
			c := req.Agent
			got, _ := json.Marshal(c.Identities)
			exp, _ := json.Marshal(tc.want.ids)
			if string(got) != string(exp) {
				t.Errorf("identities\n got %s\nwant %s", got, exp)
			}
			secrets := map[string]string{}
			for _, s := range c.Secrets {
				secrets[s.Name] = s.Identity
			}
			if g, w := mapString(secrets), mapString(tc.want.secrets); g != w {
				t.Errorf("secret identities %s, want %s", g, w)
			}
			if tc.want.tmplID != "" && c.TemplatesIdentity != tc.want.tmplID {
				t.Errorf("templates identity %q, want %q", c.TemplatesIdentity, tc.want.tmplID)
			}
			b, err := c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse(b); err != nil {
				t.Fatalf("the config does not parse back: %v", err)
			}
		})
	}
}

func mapString(m map[string]string) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// TestFromAnnotationsIdentityDenials: each bad identity annotation is denied naming the key,
// the value and what is expected.
func TestFromAnnotationsIdentityDenials(t *testing.T) {
	base := func(extra map[string]string) map[string]string {
		m := map[string]string{AnnotationRole: "app", Prefix + "secret-a": "secret/a"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name     string
		ann      map[string]string
		key      string
		expected string // a part of the expectation
	}{
		{"unknown identity referenced",
			base(map[string]string{Prefix + "identity-pki-role": "r", Prefix + "secret-a-identity": "pkl"}),
			Prefix + "secret-a-identity", `this pod defines "default" (the single-role annotations), "pki"`},
		{"identity without a role",
			base(map[string]string{Prefix + "identity-pki-auth-path": "k8s", Prefix + "secret-a-identity": "pki"}),
			Prefix + "identity-pki-role", `the Vault role of identity "pki", since ` + Prefix + "identity-pki-auth-path defines it"},
		{"upper-case identity id",
			base(map[string]string{Prefix + "identity-PKI-role": "r"}),
			Prefix + "identity-PKI-role", "lower-case letters, digits and '-'"},
		{"identity id too long",
			base(map[string]string{Prefix + "identity-" + strings.Repeat("a", 33) + "-role": "r"}),
			Prefix + "identity-" + strings.Repeat("a", 33) + "-role", "at most 32 characters"},
		{"the default identity by name",
			base(map[string]string{Prefix + "identity-default-role": "r"}),
			Prefix + "identity-default-role", "set those instead"},
		{"unknown identity field",
			base(map[string]string{Prefix + "identity-pki-rolle": "r"}),
			Prefix + "identity-pki-rolle", "<field> is one of role, auth-path, auth-type, token-audience, address, namespace, tls-server-name, tls-skip-verify"},
		{"identity reference that is not an id",
			base(map[string]string{Prefix + "secret-a-identity": "secret/b"}),
			Prefix + "secret-a-identity", "the <id> of an identity defined by " + Prefix + "identity-<id>-role"},
		{"secret and template identity keys of one output",
			base(map[string]string{Prefix + "identity-p-role": "r", Prefix + "secret-a-identity": "p", Prefix + "template-a-identity": "p"}),
			Prefix + "template-a-identity", "one identity per output: " + Prefix + "secret-a-identity names it already"},
		{"unknown auth type",
			base(map[string]string{AnnotationAuthType: "oidc"}),
			AnnotationAuthType, `"kubernetes" or "jwt"`},
		{"unknown auth type of a named identity",
			base(map[string]string{Prefix + "identity-p-role": "r", Prefix + "identity-p-auth-type": "approle"}),
			Prefix + "identity-p-auth-type", `"kubernetes" or "jwt"`},
		{"audience with a space",
			base(map[string]string{AnnotationTokenAudience: "vault prod"}),
			AnnotationTokenAudience, "one token audience"},
		{"bad address of a named identity",
			base(map[string]string{Prefix + "identity-p-role": "r", Prefix + "identity-p-address": "vault:8200"}),
			Prefix + "identity-p-address", "a Vault URL"},
		{"templates identity without templates ConfigMap",
			base(map[string]string{Prefix + "identity-p-role": "r", AnnotationTemplatesConfigMapIdentity: "p"}),
			AnnotationTemplatesConfigMapIdentity, "no value unless " + AnnotationTemplatesConfigMap},
		{"templates identity unknown",
			base(map[string]string{AnnotationTemplatesConfigMap: "t", AnnotationTemplatesConfigMapIdentity: "p"}),
			AnnotationTemplatesConfigMapIdentity, `this pod defines "default"`},
		{"default identity used without a role",
			map[string]string{Prefix + "identity-p-role": "r", Prefix + "secret-a": "secret/a", Prefix + "secret-b": "secret/b", Prefix + "secret-b-identity": "p"},
			AnnotationRole, "the Vault role to log in with"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := FromAnnotations(tc.ann, defaults)
			if err == nil {
				t.Fatalf("accepted: %+v", req.Agent)
			}
			var ae *AnnotationError
			if !errors.As(err, &ae) {
				t.Fatalf("error %q is not an AnnotationError", err)
			}
			if ae.Key != tc.key || ae.Value != tc.ann[tc.key] {
				t.Errorf("denial about %s=%q, want %s=%q (%v)", ae.Key, ae.Value, tc.key, tc.ann[tc.key], err)
			}
			if !strings.Contains(ae.Expected, tc.expected) {
				t.Errorf("expectation %q does not contain %q", ae.Expected, tc.expected)
			}
		})
	}
}

// TestFromAnnotationsNoAddressForNamedIdentity: a named identity with no address anywhere is
// denied on its own address key.
func TestFromAnnotationsNoAddressForNamedIdentity(t *testing.T) {
	d := defaults
	d.Address = ""
	_, err := FromAnnotations(map[string]string{Prefix + "identity-p-role": "r", Prefix + "secret-a": "secret/a", Prefix + "secret-a-identity": "p"}, d)
	var ae *AnnotationError
	if !errors.As(err, &ae) || ae.Key != Prefix+"identity-p-address" {
		t.Fatalf("error %v: want a denial about %sidentity-p-address", err, Prefix)
	}
}

// TestValidateIdentityMethodsAndTokenFiles: the agent accepts what the webhook writes and
// refuses a method or token file it would not.
func TestValidateIdentityMethodsAndTokenFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Identity)
		want   string
	}{
		{"jwt", func(id *Identity) { id.Method = MethodJWT }, ""},
		{"approle", func(id *Identity) { id.Method = "approle" }, `auth method "approle" is not supported`},
		{"projected token file", func(id *Identity) { id.TokenFile = ServiceAccountTokenDir + "/token-1" }, ""},
		{"other token file", func(id *Identity) { id.TokenFile = "/etc/shadow" }, "not one the webhook projects"},
		{"the default token as an extra file", func(id *Identity) { id.TokenFile = ServiceAccountTokenFile }, "not one the webhook projects"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(validConfig))
			if err != nil {
				t.Fatal(err)
			}
			tc.mutate(&c.Identities[0])
			err = c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
