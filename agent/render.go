package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/template"

	"github.com/hashicorp/vault/api"
)

// Secret is what a template's `secret` call returns; its fields mirror consul-template's, so
// `.Data`, `.LeaseID`, `.LeaseDuration`, `.Renewable` and `.Warnings` mean what they mean there.
type Secret struct {
	RequestID     string
	LeaseID       string
	LeaseDuration int
	Renewable     bool
	Data          map[string]any
	Warnings      []string
}

func fromAPI(s *api.Secret) *Secret {
	data := s.Data
	if data == nil {
		data = map[string]any{}
	}
	return &Secret{RequestID: s.RequestID, LeaseID: s.LeaseID, LeaseDuration: s.LeaseDuration, Renewable: s.Renewable, Data: data, Warnings: s.Warnings}
}

// fetcher resolves a `secret` call; the render pass memoises it so a secret read by several
// templates is fetched once.
type fetcher func(ctx context.Context, path string, data map[string]any) (*Secret, error)

// tmpl is one file to render.
type tmpl struct {
	name  string // for messages: the secret name or the ConfigMap key
	text  string
	file  string // relative to the secrets directory
	perms os.FileMode
}

// defaultTemplate renders a secret's data as JSON, unwrapping KV version 2's data.data.
func defaultTemplate(path string) string {
	return `{{ with secret "` + strings.ReplaceAll(path, `"`, `\"`) + `" }}{{ kvData .Data | toJSONPretty }}{{ end }}`
}

// kvData unwraps a KV version 2 response ({data: {...}, metadata: {...}}) to its data.
func kvData(d map[string]any) map[string]any {
	if inner, ok := d["data"].(map[string]any); ok && len(d) == 2 {
		if _, ok := d["metadata"].(map[string]any); ok {
			return inner
		}
	}
	return d
}

// render executes one template. Errors name the template and, for syntax errors, the line.
func render(ctx context.Context, t tmpl, fetch fetcher) ([]byte, error) {
	var callErr error
	funcs := funcMapFor(t.text)
	funcs["secret"] = func(path string, args ...string) (*Secret, error) {
		data, err := parseWriteArgs(args)
		if err != nil {
			return nil, err
		}
		s, err := fetch(ctx, path, data)
		if err != nil && callErr == nil {
			callErr = err
		}
		return s, err
	}
	var sc Scratch
	funcs["scratch"] = func() *Scratch { return &sc }
	var parsed *template.Template
	funcs["executeTemplate"] = executeTemplateFunc(&parsed)
	parsed, err := template.New(t.name).Funcs(funcs).Parse(t.text)
	if err != nil {
		return nil, &permanentError{fmt.Errorf("template %s: %w", t.name, err)}
	}
	buf := &limitedBuffer{max: MaxFileSize}
	if err := parsed.Execute(buf, nil); err != nil {
		if buf.over {
			return nil, &permanentError{fmt.Errorf("template %s: output exceeds %d bytes (a runaway range?)", t.name, MaxFileSize)}
		}
		if callErr != nil {
			// A Vault failure: keep its kind (transient or permanent) for the retry logic.
			return nil, fmt.Errorf("template %s: %w", t.name, callErr)
		}
		return nil, &permanentError{fmt.Errorf("template %s: %w", t.name, err)}
	}
	return buf.Bytes(), nil
}

// MaxFileSize caps one rendered file: the files live in the pod's memory, and a template that
// loops without end must fail rather than fill it.
const MaxFileSize = 4 << 20

type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		b.over = true
		return 0, fmt.Errorf("output exceeds %d bytes", b.max)
	}
	return b.Buffer.Write(p)
}

// parseWriteArgs turns secret's "k=v" arguments into a write body, as consul-template does.
func parseWriteArgs(args []string) (map[string]any, error) {
	if len(args) == 0 {
		return nil, nil
	}
	data := make(map[string]any, len(args))
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("secret argument %q: expected key=value", a)
		}
		data[k] = v
	}
	return data, nil
}

// cacheKey identifies a `secret` call: the path and, for writes, its sorted arguments.
func cacheKey(path string, data map[string]any) string {
	if len(data) == 0 {
		return path
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(path)
	for _, k := range keys {
		fmt.Fprintf(&b, "\x00%s=%v", k, data[k])
	}
	return b.String()
}
