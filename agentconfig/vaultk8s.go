package agentconfig

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// VaultPrefix is the annotation prefix of HashiCorp's injector (vault-k8s). With the webhook's
// --accept-vault-annotations, pods annotated for it are injected by us instead, with their
// files where that injector writes them and, for untemplated secrets, the same bytes.
const VaultPrefix = "vault.hashicorp.com/"

// vaultDefaultTemplates are the injector's templates for a secret without one, by the value of
// its agent-inject-default-template annotation ("map" is its default). Its agent renders them
// with consul-template, so ours renders the same bytes.
var vaultDefaultTemplates = map[string]string{
	"map":  "{{ with secret %q }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}",
	"json": "{{ with secret %q }}{{ .Data | toJSON }}\n{{ end }}",
}

// vaultKeys maps the injector's pod-level annotations to ours, one entry per key. An entry
// with no target is refused, and its text says why and what to use instead: a key that
// cannot be honoured is never ignored.
var vaultKeys = map[string]struct{ ours, refused string }{
	"agent-inject":                  {}, // read by TranslateVaultAnnotations itself
	"agent-inject-status":           {},
	"preserve-secret-case":          {},
	"agent-inject-default-template": {},
	"role":                          {ours: AnnotationRole},
	"auth-path":                     {ours: AnnotationAuthPath},
	"namespace":                     {ours: AnnotationNamespace},
	"service":                       {ours: AnnotationAddress},
	"tls-skip-verify":               {ours: AnnotationTLSSkipVerify},
	"tls-server-name":               {ours: AnnotationTLSServerName},
	"secret-volume-path":            {ours: AnnotationSecretsPath},
	"agent-inject-containers":       {ours: AnnotationContainers},
	"agent-revoke-on-shutdown":      {ours: AnnotationRevokeOnShutdown},
	"agent-requests-cpu":            {ours: AnnotationCPURequest},
	"agent-limits-cpu":              {ours: AnnotationCPULimit},
	"agent-requests-mem":            {ours: AnnotationMemoryRequest},
	"agent-limits-mem":              {ours: AnnotationMemoryLimit},
	"agent-pre-populate-only":       {}, // → mode: init, below
	"ca-cert": {refused: "a CA file inside the pod (usually from agent-extra-secret, a Secret): put the CA in a ConfigMap and set " +
		AnnotationCAConfigMap + " (or the webhook's --vault-ca-configmap)"},
	"agent-extra-secret": {refused: "a Secret mounted into the agent: put a CA in a ConfigMap and set " + AnnotationCAConfigMap},
	"agent-configmap":    {refused: "a whole Vault Agent configuration: write the templates as " + Prefix + "template-<name> annotations or a " + AnnotationTemplatesConfigMap},
	"agent-image":        {refused: "the agent image is the operator's choice (--agent-image)"},
	"agent-init-first":   {refused: "our init container always runs first"},
	"agent-pre-populate": {refused: "our native sidecar always renders before the app starts; use agent-pre-populate-only for an init container alone"},
	"agent-run-as-user":  {refused: "the agent's UID is the operator's choice (--agent-uid)"},
	"agent-run-as-group": {refused: "the agent's UID is the operator's choice (--agent-uid)"},
	"agent-cache-enable": {refused: "the agent has no listener or cache; the app reads files"},
	"log-level":          {refused: "the agent's log level is the operator's choice"},
}

// vaultSecretKeys maps the injector's per-secret annotations (<kind><name>) to ours.
var vaultSecretKeys = []struct{ kind, ours, refused string }{
	{kind: "agent-inject-secret-", ours: kindSecret},
	{kind: "agent-inject-template-file-", refused: "a template file inside the agent image: put the template in the annotation or a " + AnnotationTemplatesConfigMap},
	{kind: "agent-inject-template-", ours: kindTmpl},
	{kind: "agent-inject-file-", ours: kindFile},
	{kind: "agent-inject-perms-", ours: kindPerms},
	{kind: "agent-inject-command-", refused: "a command run through sh -c, and our image has no shell: use " + AnnotationNotifyCommand + ` with an exec-form JSON array, or ` + AnnotationNotifySignal},
}

// HasVaultAnnotations reports whether the pod carries any of the injector's annotations.
func HasVaultAnnotations(annotations map[string]string) bool {
	for k := range annotations {
		if strings.HasPrefix(k, VaultPrefix) {
			return true
		}
	}
	return false
}

// TranslateVaultAnnotations returns the annotations under our prefix that the injector's
// annotations of a pod ask for, or nil when the pod does not opt in (agent-inject is not
// "true", or that injector already injected it). Annotations with no equivalent are refused,
// naming the key and what to use instead; a pod that mixes both prefixes is refused.
func TranslateVaultAnnotations(annotations map[string]string) (map[string]string, error) {
	keys := make([]string, 0, len(annotations))
	for k := range annotations {
		switch {
		case strings.HasPrefix(k, VaultPrefix):
			keys = append(keys, k)
		case strings.HasPrefix(k, Prefix) && k != AnnotationStatus && k != AnnotationAgentConfig:
			return nil, bad(k, annotations[k], "no "+Prefix+" annotation on a pod annotated for "+VaultPrefix+"; move every key to one prefix")
		}
	}
	if annotations[VaultPrefix+"agent-inject"] != "true" || annotations[VaultPrefix+"agent-inject-status"] != "" {
		return nil, nil
	}
	sort.Strings(keys)
	preserve := annotations[VaultPrefix+"preserve-secret-case"] == "true"
	out := map[string]string{}
	var templated []string
	for _, k := range keys {
		short, v := strings.TrimPrefix(k, VaultPrefix), annotations[k]
		if e, ok := vaultKeys[short]; ok {
			switch {
			case e.refused != "":
				return nil, bad(k, v, "no "+VaultPrefix+short+": vault-injector has no equivalent for "+e.refused)
			case e.ours != "":
				out[e.ours] = v
			case short == "agent-pre-populate-only" && v == "true":
				out[AnnotationMode] = string(ModeInit)
			}
			continue
		}
		if err := translateSecretKey(k, short, v, preserve, out, &templated); err != nil {
			return nil, err
		}
	}
	style := annotations[VaultPrefix+"agent-inject-default-template"]
	if style == "" {
		style = "map"
	}
	tmpl, ok := vaultDefaultTemplates[style]
	if !ok {
		return nil, bad(VaultPrefix+"agent-inject-default-template", style, `"map" or "json"`)
	}
	// An untemplated secret renders with the injector's default template rather than ours, so
	// the app reads the bytes it read before.
	for k, path := range out {
		name, ok := strings.CutPrefix(k, Prefix+kindSecret)
		if ok && !slices.Contains(templated, name) {
			out[Prefix+kindTmpl+name] = fmt.Sprintf(tmpl, path)
		}
	}
	return out, nil
}

// translateSecretKey maps one per-secret annotation; names are lowercased as the injector does
// unless preserve-secret-case is set.
func translateSecretKey(key, short, val string, preserve bool, out map[string]string, templated *[]string) error {
	for _, e := range vaultSecretKeys {
		name, ok := strings.CutPrefix(short, e.kind)
		if !ok {
			continue
		}
		if e.refused != "" {
			return bad(key, val, "no "+VaultPrefix+e.kind+"<name>: vault-injector has no equivalent for "+e.refused)
		}
		if !preserve {
			name = strings.ToLower(name)
		}
		if e.ours == kindTmpl {
			*templated = append(*templated, name)
		}
		out[Prefix+e.ours+name] = val
		return nil
	}
	return bad(key, val, "no "+key+": vault-injector has no equivalent (see the README's table of "+VaultPrefix+" annotations)")
}
