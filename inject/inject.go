// Package inject is the offline path (`vault-injector inject`, like istioctl kube-inject): it
// reads Kubernetes YAML, runs every pod template through the webhook's own decision, applies
// the patch and writes the result. Objects without a pod template pass through byte for byte.
package inject

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"sigs.k8s.io/yaml"

	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/webhook"
)

// templatePaths locates the pod template of each kind we inject, as JSON-pointer prefixes.
var templatePaths = map[string][]string{
	"Pod":         nil,
	"Deployment":  {"spec", "template"},
	"StatefulSet": {"spec", "template"},
	"DaemonSet":   {"spec", "template"},
	"ReplicaSet":  {"spec", "template"},
	"Job":         {"spec", "template"},
	"CronJob":     {"spec", "jobTemplate", "spec", "template"},
}

// DeniedError lists every object whose annotations the webhook would refuse.
type DeniedError struct{ Messages []string }

func (e *DeniedError) Error() string { return strings.Join(e.Messages, "\n") }

// Stream injects every document of in and writes the documents, separated by "---", to out.
// namespace, when not empty, overrides the objects' own namespace (like kubectl -n). Nothing is
// written when any object is denied, so a pipe into kubectl never applies half a manifest.
func Stream(in io.Reader, out io.Writer, m *webhook.Mutator, namespace string) error {
	return StreamWarn(in, out, nil, m, namespace)
}

// StreamWarn is Stream that also writes, to warn, the warnings the webhook would send with
// each object (kubectl prints them as "Warning: ..."); nil discards them.
func StreamWarn(in io.Reader, out, warn io.Writer, m *webhook.Mutator, namespace string) error {
	var docs [][]byte
	var denied []string
	err := eachDocument(in, func(i int, doc []byte) error {
		res, warnings, err := Document(doc, m, namespace)
		if warn != nil {
			for _, w := range warnings {
				fmt.Fprintf(warn, "Warning: document %d: %s\n", i, w)
			}
		}
		var de *DeniedError
		switch {
		case errors.As(err, &de):
			denied = append(denied, fmt.Sprintf("document %d: %s", i, de.Error()))
			return nil
		case err != nil:
			return fmt.Errorf("document %d: %w", i, err)
		}
		docs = append(docs, res)
		return nil
	})
	if err != nil {
		return err
	}
	if len(denied) > 0 {
		return &DeniedError{Messages: denied}
	}
	return writeDocuments(out, docs)
}

// Document injects one YAML (or JSON) document and returns it as YAML, with the webhook's
// warnings. A document that needs no change is returned as it came.
func Document(doc []byte, m *webhook.Mutator, namespace string) ([]byte, []string, error) {
	o, err := parseObject(doc)
	if err != nil {
		return nil, nil, err
	}
	if o.tmpl == nil {
		return doc, nil, nil
	}
	js, obj, kind, path := o.json, o.obj, o.kind, o.path
	podJSON, err := json.Marshal(o.tmpl)
	if err != nil {
		return nil, nil, err
	}
	ns := namespace
	if ns == "" {
		if md, ok := obj["metadata"].(map[string]any); ok {
			ns, _ = md["namespace"].(string)
		}
	}
	if ns == "" {
		ns = "default"
	}
	pod, err := patch.Decode(podJSON)
	if err != nil {
		return nil, nil, &DeniedError{Messages: []string{fmt.Sprintf("%s %s: %v", kind, objectName(obj), err)}}
	}
	if (kind == "Job" || kind == "CronJob") && pod.Metadata != nil {
		// The template's pods will be owned by a Job: judge them as such (for warnings).
		pod.Metadata.OwnerReferences = append(pod.Metadata.OwnerReferences, patch.OwnerReference{Kind: "Job"})
	}
	res := m.MutatePodAs(pod, webhook.DecodeRunAs(podJSON), ns)
	switch res.Outcome {
	case webhook.Denied:
		name := objectName(obj)
		return nil, nil, &DeniedError{Messages: []string{fmt.Sprintf("%s %s: %v", kind, name, res.Err)}}
	case webhook.Skipped:
		return doc, nil, nil
	}
	prefix := ""
	for _, k := range path {
		prefix += "/" + patch.EscapeJSONPointer(k)
	}
	out, err := Apply(js, res.Patch, prefix)
	if err != nil {
		return nil, nil, err
	}
	y, err := yaml.JSONToYAML(out)
	return y, res.Warnings, err
}

// Apply applies ops, with prefix prepended to each path, to the JSON document doc.
func Apply(doc []byte, ops []patch.Operation, prefix string) ([]byte, error) {
	shifted := make([]patch.Operation, len(ops))
	for i, op := range ops {
		op.Path = prefix + op.Path
		shifted[i] = op
	}
	raw, err := json.Marshal(shifted)
	if err != nil {
		return nil, fmt.Errorf("encode patch: %w", err)
	}
	p, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		return nil, fmt.Errorf("decode patch: %w", err)
	}
	out, err := p.Apply(doc)
	if err != nil {
		return nil, fmt.Errorf("apply patch: %w", err)
	}
	return out, nil
}

func objectName(obj map[string]any) string {
	if md, ok := obj["metadata"].(map[string]any); ok {
		if n, ok := md["name"].(string); ok && n != "" {
			return n
		}
	}
	return "(unnamed)"
}

// stripComments drops comment-only lines, so a document of comments counts as empty.
func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			b.Write(line)
		}
	}
	return b.Bytes()
}
