package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

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
	var docs [][]byte
	var unmapped []string
	err := eachDocument(in, func(i int, doc []byte) error {
		res, err := migrateDocument(doc)
		var ae *agentconfig.AnnotationError
		switch {
		case errors.As(err, &ae):
			unmapped = append(unmapped, fmt.Sprintf("document %d: %v", i, err))
			res = doc
		case err != nil:
			return fmt.Errorf("document %d: %w", i, err)
		}
		docs = append(docs, res)
		return nil
	})
	if err != nil {
		return err
	}
	if err := writeDocuments(out, docs); err != nil {
		return err
	}
	if len(unmapped) > 0 {
		return &UnmappedError{Messages: unmapped}
	}
	return nil
}

// migrateDocument returns doc with its pod template's annotations translated, or doc as it came
// when it has no pod template or nothing to translate.
func migrateDocument(doc []byte) ([]byte, error) {
	o, err := parseObject(doc)
	if err != nil {
		return nil, err
	}
	if o.tmpl == nil {
		return doc, nil
	}
	md, _ := o.tmpl["metadata"].(map[string]any)
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
		return nil, fmt.Errorf("%s %s: %w", o.kind, objectName(o.obj), err)
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
	out, err := json.Marshal(o.obj)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(out)
}
