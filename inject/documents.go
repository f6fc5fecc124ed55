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
)

// eachDocument calls fn with every non-empty YAML document of in, numbered from 1.
func eachDocument(in io.Reader, fn func(i int, doc []byte) error) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(in))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		if err := fn(i, doc); err != nil {
			return err
		}
	}
}

// writeDocuments writes docs separated by "---".
func writeDocuments(out io.Writer, docs [][]byte) error {
	for i, d := range docs {
		if i > 0 {
			if _, err := io.WriteString(out, "---\n"); err != nil {
				return err
			}
		}
		if _, err := out.Write(d); err != nil {
			return err
		}
	}
	return nil
}

// object is one parsed document and, for the kinds we inject, its pod template.
type object struct {
	json []byte
	obj  map[string]any
	kind string
	// path is the pod template's location (nil for a Pod); tmpl is the template, nil when the
	// kind has none.
	path []string
	tmpl map[string]any
}

// parseObject parses doc and finds its pod template.
func parseObject(doc []byte) (*object, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	o := &object{json: js}
	if err := json.Unmarshal(js, &o.obj); err != nil {
		return nil, fmt.Errorf("document is not a Kubernetes object: %w", err)
	}
	o.kind, _ = o.obj["kind"].(string)
	path, ok := templatePaths[o.kind]
	if !ok {
		return o, nil
	}
	o.path = path
	tmpl := o.obj
	for _, k := range path {
		next, ok := tmpl[k].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s has no %s", o.kind, "/"+strings.Join(path, "/"))
		}
		tmpl = next
	}
	o.tmpl = tmpl
	return o, nil
}
