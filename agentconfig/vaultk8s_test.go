package agentconfig

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

const vp = VaultPrefix

func TestTranslateVaultAnnotations(t *testing.T) {
	mapTmpl := func(path string) string { return fmt.Sprintf(vaultDefaultTemplates["map"], path) }
	for _, tc := range []struct {
		name string
		in   map[string]string
		want map[string]string // nil: not injected
	}{
		{"not opted in", map[string]string{vp + "role": "r", vp + "agent-inject-secret-a": "secret/a"}, nil},
		{"opted out", map[string]string{vp + "agent-inject": "false", vp + "role": "r"}, nil},
		{"injected by that injector already", map[string]string{vp + "agent-inject": "true", vp + "agent-inject-status": "injected", vp + "role": "r"}, nil},
		{"pod-level keys", map[string]string{
			vp + "agent-inject": "true", vp + "role": "r", vp + "auth-path": "auth/k8s", vp + "namespace": "team",
			vp + "service": "https://vault:8200", vp + "tls-skip-verify": "true", vp + "secret-volume-path": "/etc/secrets",
			vp + "agent-inject-containers": "app", vp + "agent-pre-populate-only": "true", vp + "agent-limits-mem": "32Mi",
		}, map[string]string{
			AnnotationRole: "r", AnnotationAuthPath: "auth/k8s", AnnotationNamespace: "team", AnnotationAddress: "https://vault:8200",
			AnnotationTLSSkipVerify: "true", AnnotationSecretsPath: "/etc/secrets", AnnotationContainers: "app",
			AnnotationMode: "init", AnnotationMemoryLimit: "32Mi",
		}},
		{"untemplated secret: the injector's map template, name lower-cased", map[string]string{
			vp + "agent-inject": "true", vp + "role": "r", vp + "agent-inject-secret-DB.conf": "db/creds/app", vp + "agent-inject-perms-DB.conf": "0400",
		}, map[string]string{
			AnnotationRole: "r", Prefix + "secret-db.conf": "db/creds/app", Prefix + "template-db.conf": mapTmpl("db/creds/app"), Prefix + "perms-db.conf": "0400",
		}},
		{"preserve-secret-case and the json default", map[string]string{
			vp + "agent-inject": "true", vp + "role": "r", vp + "preserve-secret-case": "true", vp + "agent-inject-default-template": "json",
			vp + "agent-inject-secret-DB": "kv/db",
		}, map[string]string{
			AnnotationRole: "r", Prefix + "secret-DB": "kv/db", Prefix + "template-DB": fmt.Sprintf(vaultDefaultTemplates["json"], "kv/db"),
		}},
		{"templated secret keeps its template and file", map[string]string{
			vp + "agent-inject": "true", vp + "role": "r", vp + "agent-inject-secret-x": "kv/x", vp + "agent-inject-template-x": "{{ 1 }}",
			vp + "agent-inject-file-x": "conf/x.ini",
		}, map[string]string{
			AnnotationRole: "r", Prefix + "secret-x": "kv/x", Prefix + "template-x": "{{ 1 }}", Prefix + "file-x": "conf/x.ini",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TranslateVaultAnnotations(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

// Keys without an equivalent are refused, naming the key and what to use instead; never ignored.
func TestTranslateVaultAnnotationsRefuses(t *testing.T) {
	base := func(k, v string) map[string]string {
		return map[string]string{vp + "agent-inject": "true", vp + "role": "r", vp + "agent-inject-secret-a": "kv/a", k: v}
	}
	for _, tc := range []struct {
		name, key, hint string
		in              map[string]string
	}{
		{"command", vp + "agent-inject-command-a", "notify-command", base(vp+"agent-inject-command-a", "kill -HUP 1")},
		{"ca-cert path", vp + "ca-cert", "ca-configmap", base(vp+"ca-cert", "/vault/tls/ca.crt")},
		{"template file", vp + "agent-inject-template-file-a", "templates-configmap", base(vp+"agent-inject-template-file-a", "/t.ctmpl")},
		{"agent configmap", vp + "agent-configmap", "templates-configmap", base(vp+"agent-configmap", "cfg")},
		{"unknown key", vp + "agent-enable-quit", "README", base(vp+"agent-enable-quit", "true")},
		{"bad default template", vp + "agent-inject-default-template", `"map" or "json"`, base(vp+"agent-inject-default-template", "yaml")},
		{"mixed prefixes", Prefix + "secret-b", "one prefix", base(Prefix+"secret-b", "kv/b")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := TranslateVaultAnnotations(tc.in)
			var ae *AnnotationError
			if !errors.As(err, &ae) || ae.Key != tc.key || !strings.Contains(err.Error(), tc.hint) {
				t.Fatalf("error %v; want one naming %s and mentioning %q", err, tc.key, tc.hint)
			}
		})
	}
}

// The default templates are those the agent's differential test renders with consul-template
// (agent/testdata/ctmpl/vaultk8s-default-*.ctmpl), so the bytes match the other injector's.
func TestVaultDefaultTemplatesAreInTheDifferentialCorpus(t *testing.T) {
	for style, path := range map[string]string{"map": "kv/app", "json": "secret/data/multi"} {
		b, err := os.ReadFile("../agent/testdata/ctmpl/vaultk8s-default-" + style + ".ctmpl")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(vaultDefaultTemplates[style], path); string(b) != want {
			t.Errorf("%s: corpus file %q, translation writes %q", style, b, want)
		}
	}
}

// Any annotations: the translation never panics, and what it returns either parses or is
// denied with an error naming an annotation.
func FuzzTranslateVaultAnnotations(f *testing.F) {
	f.Add("agent-inject-secret-DB", "db/creds/app", "agent-inject-template-DB", "{{ 1 }}", "true")
	f.Add("agent-inject-command-x", "sh", "ca-cert", "/x", "true")
	f.Add("agent-inject-perms-a", "0400", "preserve-secret-case", "true", "false")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, inject string) {
		ann := map[string]string{vp + "agent-inject": inject, vp + "role": "r", vp + k1: v1, vp + k2: v2}
		out, err := TranslateVaultAnnotations(ann)
		if err != nil {
			var ae *AnnotationError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v names no annotation", err)
			}
			return
		}
		if out == nil {
			return
		}
		if _, err := FromAnnotations(out, Defaults{Address: "https://vault:8200", AuthPath: "auth/kubernetes", SecretsPath: "/vault/secrets", RefreshInterval: 300e9}); err != nil {
			var ae *AnnotationError
			if !errors.As(err, &ae) && !strings.HasPrefix(err.Error(), "annotations:") {
				t.Fatalf("translated annotations fail without naming one: %v", err)
			}
		}
	})
}
