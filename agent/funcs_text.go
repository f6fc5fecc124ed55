package agent

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"iter"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vault-injector/vault-injector/agentconfig"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

// The functions below mirror consul-template v0.41.1's template/funcs.go one for one: same
// argument order, same empty-input cases, same encoders (encoding/json, yaml v2, BurntSushi
// toml), so that a template renders the same bytes here and there.

// mustEnv is env that fails on an unset or empty variable.
func mustEnv(name string) (string, error) {
	v := appGetenv(name)
	if v == "" {
		return "", fmt.Errorf("required environment variable %s is empty", name)
	}
	return v, nil
}

// envOrDefault returns the variable when it is set (even empty), else def.
func envOrDefault(name, def string) string {
	if v, ok := os.LookupEnv(agentconfig.AppEnvPrefix + name); ok {
		return v
	}
	return def
}

func trimSpace(s string) string            { return strings.TrimSpace(s) }
func toLower(s string) string              { return strings.ToLower(s) }
func toUpper(s string) string              { return strings.ToUpper(s) }
func toTitle(s string) string              { return cases.Title(language.Und, cases.NoLower).String(s) }
func trim(cutset, s string) string         { return strings.Trim(s, cutset) }
func trimPrefix(prefix, s string) string   { return strings.TrimPrefix(s, prefix) }
func trimSuffix(suffix, s string) string   { return strings.TrimSuffix(s, suffix) }
func replaceAll(old, new, s string) string { return strings.ReplaceAll(s, old, new) }
func join(sep string, a []string) string   { return strings.Join(a, sep) }
func contains(v, l any) (bool, error)      { return in(l, v) }
func md5sum(s string) string               { return fmt.Sprintf("%x", md5.Sum([]byte(s))) }
func regexMatch(re, s string) (bool, error) {
	r, err := regexp.Compile(re)
	if err != nil {
		return false, fmt.Errorf("regexMatch: %w", err)
	}
	return r.MatchString(s), nil
}

func regexReplaceAll(re, repl, s string) (string, error) {
	r, err := regexp.Compile(re)
	if err != nil {
		return "", fmt.Errorf("regexReplaceAll: %w", err)
	}
	return r.ReplaceAllString(s, repl), nil
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// hmacSHA256Hex is `hmacSHA256Hex message key`.
func hmacSHA256Hex(message, key string) string {
	h := hmac.New(sha256.New, []byte(key))
	h.Write([]byte(message))
	return hex.EncodeToString(h.Sum(nil))
}

// now is the clock timestamp reads; tests replace it.
var now = func() time.Time { return time.Now().UTC() }

// timestamp is the current time in UTC: RFC 3339, "unix" seconds, or a Go layout.
func timestamp(layout ...string) (string, error) {
	switch len(layout) {
	case 0:
		return now().Format(time.RFC3339), nil
	case 1:
		if layout[0] == "unix" {
			return strconv.FormatInt(now().Unix(), 10), nil
		}
		return now().Format(layout[0]), nil
	}
	return "", fmt.Errorf("timestamp: wrong number of arguments, expected 0 or 1, but got %d", len(layout))
}

func split(sep, s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return []string{}
	}
	return strings.Split(s, sep)
}

// splitToMap splits s by sep1, then each item at its first sep2; items without sep2 are dropped.
func splitToMap(sep1, sep2, s string) map[string]string {
	s = strings.TrimSpace(s)
	m := map[string]string{}
	if s == "" {
		return m
	}
	for _, item := range strings.Split(s, sep1) {
		if k, v, ok := strings.Cut(item, sep2); ok {
			m[k] = v
		}
	}
	return m
}

// indent prefixes every non-empty line with spaces.
func indent(spaces int, s string) (string, error) {
	if spaces < 0 {
		return "", fmt.Errorf("indent value must be a positive integer")
	}
	pad := strings.Repeat(" ", spaces)
	var b strings.Builder
	start := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if start && c != '\n' {
			b.WriteString(pad)
		}
		b.WriteByte(c)
		start = c == '\n'
	}
	return b.String(), nil
}

// in reports whether l contains v, as consul-template does: in a string, a substring of the
// same type; in a slice, an element equal as a signed integer, a float or a string of the same
// type (unsigned elements never match). Anything else is false, not an error.
func in(l, v any) (bool, error) {
	lv := reflect.ValueOf(l)
	vv := reflect.ValueOf(v)
	switch lv.Kind() {
	case reflect.Array, reflect.Slice:
		for i := 0; i < lv.Len(); i++ {
			e := lv.Index(i)
			if e.Kind() == reflect.Interface {
				e = e.Elem()
			}
			switch e.Kind() {
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				switch vv.Kind() {
				case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
					if vv.Int() == e.Int() {
						return true, nil
					}
				}
			case reflect.Float32, reflect.Float64:
				switch vv.Kind() {
				case reflect.Float32, reflect.Float64:
					if vv.Float() == e.Float() {
						return true, nil
					}
				}
			case reflect.String:
				if vv.IsValid() && vv.Type() == e.Type() && vv.String() == e.String() {
					return true, nil
				}
			}
		}
	case reflect.String:
		if vv.IsValid() && vv.Type() == lv.Type() && strings.Contains(lv.String(), vv.String()) {
			return true, nil
		}
	}
	return false, nil
}

// containsSome builds containsAll, containsAny, containsNone and containsNotAll (`containsAll
// needles haystack`).
func containsSome(retTrue, invert bool) func([]any, any) (bool, error) {
	return func(v []any, l any) (bool, error) {
		for _, x := range v {
			if ok, _ := in(l, x); ok != invert {
				return !retTrue, nil
			}
		}
		return retTrue, nil
	}
}

// explodeMap turns "a/b/c" keys into nested maps.
func explodeMap(in map[string]any) (map[string]any, error) {
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string]any{}
	for _, k := range keys {
		if err := explodeInto(out, k, in[k], k); err != nil {
			return nil, fmt.Errorf("explodeMap: %w", err)
		}
	}
	return out, nil
}

func explodeInto(m map[string]any, k string, v any, p string) error {
	if strings.Contains(k, "/") {
		top, rest, _ := strings.Cut(k, "/")
		if _, ok := m[top]; !ok {
			m[top] = map[string]any{}
		}
		nest, ok := m[top].(map[string]any)
		if !ok {
			return fmt.Errorf("not a map: %q: %q already has value %q", p, top, m[top])
		}
		return explodeInto(nest, rest, v, k)
	}
	if k != "" {
		m[k] = v
	}
	return nil
}

// loop yields start..stop-1 (`loop 5`, `loop 2 5`) as int64; arguments are integers or decimal
// strings. consul-template feeds a channel from a goroutine; a sequence gives the same range
// without a goroutine left blocked when the template fails mid-loop.
func loop(args ...any) (iter.Seq[int64], error) {
	to64 := func(x any) (int64, error) {
		v := reflect.ValueOf(x)
		switch kindOf(v) {
		case numInt:
			return v.Int(), nil
		case numUint:
			return int64(v.Uint()), nil
		}
		if v.Kind() == reflect.String {
			return parseInt(v.String())
		}
		return 0, fmt.Errorf("loop: bad argument type: %T", x)
	}
	var a, b any
	switch len(args) {
	case 1:
		a, b = 0, args[0]
	case 2:
		a, b = args[0], args[1]
	default:
		return nil, fmt.Errorf("loop: wrong number of arguments, expected 1 or 2, but got %d", len(args))
	}
	start, err := to64(a)
	if err != nil {
		return nil, err
	}
	stop, err := to64(b)
	if err != nil {
		return nil, err
	}
	return func(yield func(int64) bool) {
		for i := start; i < stop; i++ {
			if !yield(i) {
				return
			}
		}
	}, nil
}
