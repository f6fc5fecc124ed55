package inject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// UnmappedError lists the objects whose vault.hashicorp.com/ annotations could not be rewritten;
// they are written unchanged.
type UnmappedError struct{ Messages []string }

func (e *UnmappedError) Error() string { return strings.Join(e.Messages, "\n") }

// Migrate rewrites the vault.hashicorp.com/ annotations of every pod template in in to ours, as
// the webhook's --accept-vault-annotations reads them (agentconfig.TranslateVaultAnnotations),
// and writes every document to out. An object whose annotations cannot be mapped is written
// unchanged and named in the returned *UnmappedError.
func Migrate(in io.Reader, out io.Writer) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var unmapped []string
	first := true
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		res, err := migrateDocument(doc)
		var ae *agentconfig.AnnotationError
		switch {
		case errors.As(err, &ae):
			unmapped = append(unmapped, fmt.Sprintf("document %d: %v", i, err))
			res = doc
		case err != nil:
			return fmt.Errorf("document %d: %w", i, err)
		}
		if !first {
			if _, err := io.WriteString(out, "---\n"); err != nil {
				return err
			}
		}
		first = false
		if _, err := out.Write(res); err != nil {
			return err
		}
	}
	if len(unmapped) > 0 {
		return &UnmappedError{Messages: unmapped}
	}
	return nil
}

// migrateDocument returns doc with its pod template's annotations translated, or doc as it came
// when it has no pod template or nothing to translate.
func migrateDocument(doc []byte) ([]byte, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	var obj map[string]any
	if err := json.Unmarshal(js, &obj); err != nil {
		return nil, fmt.Errorf("document is not a Kubernetes object: %w", err)
	}
	kind, _ := obj["kind"].(string)
	path, ok := templatePaths[kind]
	if !ok {
		return doc, nil
	}
	tmpl := obj
	for _, k := range path {
		next, ok := tmpl[k].(map[string]any)
		if !ok {
			return doc, nil
		}
		tmpl = next
	}
	md, _ := tmpl["metadata"].(map[string]any)
	raw, _ := md["annotations"].(map[string]any)
	ann := make(map[string]string, len(raw))
	for k, v := range raw {
		if s, ok := v.(string); ok {
			ann[k] = s
		}
	}
	if !agentconfig.HasVaultAnnotations(ann) {
		return doc, nil
	}
	translated, err := agentconfig.TranslateVaultAnnotations(ann)
	if err != nil {
		var ae *agentconfig.AnnotationError
		if errors.As(err, &ae) {
			return nil, fmt.Errorf("%s %s: %w", kind, objectName(obj), err)
		}
		return nil, err
	}
	if translated == nil {
		return doc, nil
	}
	for k := range raw {
		if strings.HasPrefix(k, agentconfig.VaultPrefix) {
			delete(raw, k)
		}
	}
	for k, v := range translated {
		raw[k] = v
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(out)
}
