package agentconfig

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var defaults = Defaults{Address: "https://vault:8200", AuthPath: "auth/kubernetes", RefreshInterval: 5 * time.Minute, SecretsPath: SecretsDir}

func TestFromAnnotationsValid(t *testing.T) {
	// Annotations of other tools (and other prefixes) are none of our business.
	req, err := FromAnnotations(map[string]string{
		"example.com/unrelated":      "ignored",
		"vault.hashicorp.com/role":   "not ours",
		AnnotationRole:               "app",
		AnnotationAuthPath:           "k8s-prod/",
		AnnotationAddress:            "https://vault.example:8200/",
		Prefix + "secret-db":         "/database/creds/app/",
		Prefix + "file-db":           "conf/db.env",
		Prefix + "perms-db":          "0400",
		Prefix + "secret-kv":         "secret/data/app",
		AnnotationRefreshInterval:    "30s",
		AnnotationNotifyProcess:      "nginx",
		AnnotationContainers:         "app, web",
		AnnotationTemplatesConfigMap: "tmpl",
		AnnotationMemoryLimit:        "32Mi",
		AnnotationRevokeOnShutdown:   "false",
		AnnotationNamespace:          "team-a/",
	}, defaults)
	if err != nil {
		t.Fatal(err)
	}
	c := req.Agent
	id := c.Identities[0]
	if id.AuthPath != "auth/k8s-prod" || id.Address != "https://vault.example:8200" || id.Role != "app" || id.Namespace != "team-a" {
		t.Errorf("identity %+v", id)
	}
	if len(c.Secrets) != 2 || c.Secrets[0].Name != "db" || c.Secrets[0].Path != "database/creds/app" || c.Secrets[0].File != "conf/db.env" || c.Secrets[0].Perms != 0o400 {
		t.Errorf("secrets %+v", c.Secrets)
	}
	if c.Secrets[1].File != "kv" || c.Secrets[1].Perms != 0o644 {
		t.Errorf("default file/perms: %+v", c.Secrets[1])
	}
	if c.Notify == nil || c.Notify.Signal != "SIGHUP" || c.Notify.Process != "nginx" {
		t.Errorf("notify %+v", c.Notify)
	}
	if c.RefreshInterval != Duration(30*time.Second) || c.RevokeOnShutdown == nil || *c.RevokeOnShutdown {
		t.Errorf("refresh %v revoke %v", c.RefreshInterval, c.RevokeOnShutdown)
	}
	if strings.Join(req.Containers, ",") != "app,web" || req.TemplatesConfigMap != "tmpl" || c.TemplatesDir != TemplatesDir || req.Resources.MemoryLimit != "32Mi" {
		t.Errorf("request %+v", req)
	}
	// The config survives its own round trip.
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Secrets[0].Perms != 0o400 || back.RefreshInterval != c.RefreshInterval {
		t.Errorf("round trip changed the config: %+v", back)
	}
}

func TestFromAnnotationsNothingRequested(t *testing.T) {
	for _, a := range []map[string]string{
		nil,
		{"app": "x"},
		{AnnotationRole: "only-a-role"},
		{AnnotationInject: "false", AnnotationRole: "r", Prefix + "secret-a": "a"},
	} {
		req, err := FromAnnotations(a, defaults)
		if req != nil || err != nil {
			t.Errorf("%v: got %v, %v; want nothing", a, req, err)
		}
	}
}

func TestFromAnnotationsInvalid(t *testing.T) {
	base := func(kv ...string) map[string]string {
		m := map[string]string{AnnotationRole: "r", Prefix + "secret-a": "secret/a"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name string
		ann  map[string]string
		key  string
	}{
		{"unknown key", base(Prefix+"agent-inject", "true"), Prefix + "agent-inject"},
		{"bad inject", base(AnnotationInject, "yes please"), AnnotationInject},
		{"bad mode", base(AnnotationMode, "daemon"), AnnotationMode},
		{"empty role", base(AnnotationRole, ""), AnnotationRole},
		{"missing role", map[string]string{Prefix + "secret-a": "secret/a"}, AnnotationRole},
		{"perms not octal", base(Prefix+"perms-a", "0999"), Prefix + "perms-a"},
		{"perms too wide", base(Prefix+"perms-a", "7777"), Prefix + "perms-a"},
		{"file traversal", base(Prefix+"file-a", "../x"), Prefix + "file-a"},
		{"file absolute", base(Prefix+"file-a", "/etc/x"), Prefix + "file-a"},
		{"file dotdot element", base(Prefix+"file-a", "a/..data"), Prefix + "file-a"},
		{"name traversal", base(Prefix+"secret-..", "secret/x"), Prefix + "secret-.."},
		{"empty name", base(Prefix+"secret-", "secret/x"), Prefix + "secret-"},
		{"vault path traversal", base(Prefix+"secret-a", "secret/../sys/raw"), Prefix + "secret-a"},
		{"empty template", base(Prefix+"template-b", "  "), Prefix + "template-b"},
		{"file without source", base(Prefix+"file-b", "b.txt"), Prefix + "secret-b"},
		{"bad address", base(AnnotationAddress, "vault:8200"), AnnotationAddress},
		{"relative secrets path", base(AnnotationSecretsPath, "vault/secrets"), AnnotationSecretsPath},
		{"bad container list", base(AnnotationContainers, "a,,b"), AnnotationContainers},
		{"bad refresh", base(AnnotationRefreshInterval, "100ms"), AnnotationRefreshInterval},
		{"bad CA configmap", base(AnnotationCAConfigMap, "Vault_CA"), AnnotationCAConfigMap},
		{"unknown key near ours", base(AnnotationStatus+"-ignored", "x"), AnnotationStatus + "-ignored"},
		{"bad CA key", base(AnnotationCAConfigMap, "vault-ca/a b"), AnnotationCAConfigMap},
		{"CA key traversal", base(AnnotationCAConfigMap, "vault-ca/.."), AnnotationCAConfigMap},
		{"bad signal", base(AnnotationNotifySignal, "SIGKILL"), AnnotationNotifySignal},
		{"signal without process", base(AnnotationNotifySignal, "SIGHUP"), AnnotationNotifyProcess},
		{"bad command", base(AnnotationNotifyCommand, "reload now"), AnnotationNotifyCommand},
		{"notify in init mode", base(AnnotationNotifyProcess, "app", AnnotationMode, "init"), AnnotationMode},
		{"bad cpu", base(AnnotationCPURequest, "lots"), AnnotationCPURequest},
		{"negative memory", base(AnnotationMemoryLimit, "-1Mi"), AnnotationMemoryLimit},
		{"configmap name", base(AnnotationTemplatesConfigMap, "Not_A_Name"), AnnotationTemplatesConfigMap},
		{"user-set agent config", base(AnnotationAgentConfig, "{}"), AnnotationAgentConfig},
		{"two secrets one file", base(Prefix+"secret-b", "secret/b", Prefix+"file-b", "a"), Prefix + "file-b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := FromAnnotations(tc.ann, defaults)
			if err == nil {
				t.Fatalf("accepted: %+v", req)
			}
			var ae *AnnotationError
			if !errors.As(err, &ae) || ae.Key != tc.key || ae.Expected == "" {
				t.Fatalf("error %q does not name annotation %s", err, tc.key)
			}
			if !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), "expected") {
				t.Errorf("message %q lacks key or expectation", err)
			}
		})
	}
}

func TestParseRejectsUnknownVersion(t *testing.T) {
	for _, in := range []string{`{"version":2}`, `{`, `{"version":1,"mode":"x"}`, `{"version":1,"mode":"init","identities":[]}`} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

// FuzzFromAnnotations: any annotations either fail with an error or give a config that
// validates and survives a JSON round trip; nothing panics.
func FuzzFromAnnotations(f *testing.F) {
	f.Add("secret-a", "secret/a", "file-a", "x/y", "perms-a", "0640")
	f.Add("template-b", "{{ env \"X\" }}", "mode", "init", "containers", "a,b")
	f.Add("templates-configmap", "t", "notify-command", `["/x"]`, "refresh-interval", "1m")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		ann := map[string]string{AnnotationRole: "r", Prefix + k1: v1, Prefix + k2: v2, Prefix + k3: v3}
		req, err := FromAnnotations(ann, defaults)
		if err != nil || req == nil {
			return
		}
		b, err := req.Agent.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b); err != nil {
			t.Fatalf("produced a config the agent rejects: %v\n%s", err, b)
		}
	})
}

func TestCAConfigMap(t *testing.T) {
	ann := map[string]string{AnnotationRole: "r", Prefix + "secret-a": "secret/a"}
	for _, tc := range []struct {
		name, annotation, dflt, wantCM, wantKey string
	}{
		{"none", "", "", "", ""},
		{"annotation, default key", "vault-ca", "", "vault-ca", "ca.crt"},
		{"annotation with key", "trust/bundle.pem", "", "trust", "bundle.pem"},
		{"operator default", "", "trust-bundle/ca-certificates.crt", "trust-bundle", "ca-certificates.crt"},
		{"annotation wins over default", "vault-ca", "trust-bundle", "vault-ca", "ca.crt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := map[string]string{}
			for k, v := range ann {
				a[k] = v
			}
			if tc.annotation != "" {
				a[AnnotationCAConfigMap] = tc.annotation
			}
			req, err := FromAnnotations(a, Defaults{Address: "https://vault:8200", AuthPath: "auth/kubernetes", RefreshInterval: time.Minute, SecretsPath: SecretsDir, CAConfigMap: tc.dflt})
			if err != nil {
				t.Fatal(err)
			}
			if req.CAConfigMap != tc.wantCM || req.CAKey != tc.wantKey {
				t.Errorf("ConfigMap %q key %q, want %q %q", req.CAConfigMap, req.CAKey, tc.wantCM, tc.wantKey)
			}
			wantFile := ""
			if tc.wantCM != "" {
				wantFile = CAFile
			}
			if got := req.Agent.Identities[0].CACertFile; got != wantFile {
				t.Errorf("CACertFile %q, want %q", got, wantFile)
			}
		})
	}
}
