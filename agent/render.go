package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/hashicorp/vault/api"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"sigs.k8s.io/yaml"
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
	funcs := funcMap()
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

// funcMap holds the consul-template functions the agent supports, with its semantics
// (argument order included: `split sep s`, `join sep list`, `replaceAll old new s`).
func funcMap() template.FuncMap {
	return template.FuncMap{
		"env":          appGetenv,
		"kvData":       kvData,
		"base64Encode": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"base64Decode": func(s string) (string, error) {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return "", fmt.Errorf("base64Decode: %w", err)
			}
			return string(b), nil
		},
		"base64URLEncode": func(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) },
		"base64URLDecode": func(s string) (string, error) {
			b, err := base64.URLEncoding.DecodeString(s)
			if err != nil {
				return "", fmt.Errorf("base64URLDecode: %w", err)
			}
			return string(b), nil
		},
		"toJSON": func(v any) (string, error) {
			b, err := json.Marshal(v)
			if err != nil {
				return "", fmt.Errorf("toJSON: %w", err)
			}
			return string(bytes.TrimSpace(b)), nil
		},
		"toJSONPretty": func(v any) (string, error) {
			b, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				return "", fmt.Errorf("toJSONPretty: %w", err)
			}
			return string(bytes.TrimSpace(b)), nil
		},
		"toYAML": func(v any) (string, error) {
			b, err := yaml.Marshal(v)
			if err != nil {
				return "", fmt.Errorf("toYAML: %w", err)
			}
			return string(bytes.TrimSpace(b)), nil
		},
		"trimSpace":  strings.TrimSpace,
		"toLower":    strings.ToLower,
		"toUpper":    strings.ToUpper,
		"toTitle":    func(s string) string { return cases.Title(language.Und, cases.NoLower).String(s) },
		"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"parseJSON": func(s string) (any, error) {
			if s == "" {
				return map[string]any{}, nil
			}
			var v any
			if err := json.Unmarshal([]byte(s), &v); err != nil {
				return nil, fmt.Errorf("parseJSON: %w", err)
			}
			return v, nil
		},
		"regexMatch": func(re, s string) (bool, error) {
			r, err := regexp.Compile(re)
			if err != nil {
				return false, fmt.Errorf("regexMatch: %w", err)
			}
			return r.MatchString(s), nil
		},
		"regexReplaceAll": func(re, repl, s string) (string, error) {
			r, err := regexp.Compile(re)
			if err != nil {
				return "", fmt.Errorf("regexReplaceAll: %w", err)
			}
			return r.ReplaceAllString(s, repl), nil
		},
		"sha256Hex": func(s string) string {
			sum := sha256.Sum256([]byte(s))
			return hex.EncodeToString(sum[:])
		},
		"split": func(sep, s string) []string {
			s = strings.TrimSpace(s)
			if s == "" {
				return []string{}
			}
			return strings.Split(s, sep)
		},
		"join": func(sep string, a []string) string { return strings.Join(a, sep) },
		"replaceAll": func(old, new, s string) string {
			return strings.ReplaceAll(s, old, new)
		},
		"contains": func(v, l any) (bool, error) { return in(l, v) },
		"in":       in,
		"indent":   indent,
		"trim":     func(cut, s string) string { return strings.Trim(s, cut) },
	}
}

// in reports whether l (a string, slice or array) contains v.
func in(l, v any) (bool, error) {
	lv := reflect.ValueOf(l)
	vv := reflect.ValueOf(v)
	switch lv.Kind() {
	case reflect.String:
		if vv.Kind() != reflect.String {
			return false, fmt.Errorf("in: cannot look for %T in a string", v)
		}
		return strings.Contains(lv.String(), vv.String()), nil
	case reflect.Slice, reflect.Array:
		for i := 0; i < lv.Len(); i++ {
			if reflect.DeepEqual(lv.Index(i).Interface(), v) {
				return true, nil
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("in: cannot look inside a %T", l)
}

// indent prefixes every non-empty line with spaces.
func indent(spaces int, s string) (string, error) {
	if spaces < 0 {
		return "", fmt.Errorf("indent: %d is negative", spaces)
	}
	pad := strings.Repeat(" ", spaces)
	var b strings.Builder
	start := true
	for _, c := range s {
		if start && c != '\n' {
			b.WriteString(pad)
		}
		b.WriteRune(c)
		start = c == '\n'
	}
	return b.String(), nil
}

// writeFile replaces dir/rel atomically (temp file in the same directory, then rename) when its
// content or mode differ, and reports whether it wrote. The temp file lives beside the target:
// the root filesystem is read-only and a rename cannot cross volumes.
func writeFile(dir, rel string, content []byte, perms os.FileMode) (bool, error) {
	path := filepath.Join(dir, rel)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == perms {
			return false, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(content); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Chmod(perms); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, err
	}
	return true, nil
}
