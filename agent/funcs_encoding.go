package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	yaml "go.yaml.in/yaml/v2"
)

// Encoders and parsers, as consul-template v0.41.1 has them (see funcs_text.go).

func base64Encode(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func base64Decode(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("base64Decode: %w", err)
	}
	return string(b), nil
}

func base64URLEncode(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }

func base64URLDecode(s string) (string, error) {
	b, err := base64.URLEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("base64URLDecode: %w", err)
	}
	return string(b), nil
}

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("toJSON: %w", err)
	}
	return string(bytes.TrimSpace(b)), nil
}

func toJSONPretty(v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", fmt.Errorf("toJSONPretty: %w", err)
	}
	return string(bytes.TrimSpace(b)), nil
}

func toUnescapedJSON(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("toUnescapedJSON: %w", err)
	}
	return strings.TrimRight(buf.String(), "\r\n"), nil
}

func toUnescapedJSONPretty(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("toUnescapedJSONPretty: %w", err)
	}
	return strings.TrimRight(buf.String(), "\r\n"), nil
}

func toYAML(v any) (string, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("toYAML: %w", err)
	}
	return string(bytes.TrimSpace(b)), nil
}

func toTOML(v any) (string, error) {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(v); err != nil {
		return "", fmt.Errorf("toTOML: %w", err)
	}
	return string(bytes.TrimSpace(buf.Bytes())), nil
}

func parseJSON(s string) (any, error) {
	if s == "" {
		return map[string]any{}, nil
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("parseJSON: %w", err)
	}
	return v, nil
}

// parseYAML decodes with yaml v2 as consul-template does: mappings become
// map[interface{}]interface{} (which toJSON cannot encode, there as here).
func parseYAML(s string) (any, error) {
	if s == "" {
		return map[string]any{}, nil
	}
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("parseYAML: %w", err)
	}
	return v, nil
}

// parseOr parses s with parse, as consul-template's parseBool/Int/Uint/Float: "" is the zero
// value, not an error.
func parseOr[T any](name, s string, parse func(string) (T, error)) (T, error) {
	var zero T
	if s == "" {
		return zero, nil
	}
	v, err := parse(s)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

func parseBool(s string) (bool, error) { return parseOr("parseBool", s, strconv.ParseBool) }

func parseInt(s string) (int64, error) {
	return parseOr("parseInt", s, func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) })
}

func parseUint(s string) (uint64, error) {
	return parseOr("parseUint", s, func(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) })
}

func parseFloat(s string) (float64, error) {
	return parseOr("parseFloat", s, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
}
