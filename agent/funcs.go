package agent

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
)

// funcMap holds the consul-template v0.41.1 functions the agent supports, with its semantics
// (argument order included: `split sep s`, `join sep list`, `replaceAll old new s`, `subtract
// b a` is a-b). render adds the per-template ones: `secret`, `scratch`, `executeTemplate`.
// Functions that need Consul, Nomad, a plugin process or a file outside the pod are left out;
// README "The agent and consul-template" lists them.
func funcMap() template.FuncMap { return funcMapFor("sprig_") }

// funcMapFor is funcMap for one template text: sprig's ~190 functions are added only when the
// text names one (a function can be called only by its name in the text, `define`d templates
// included). Every render parses its template, and text/template turns each function of the
// map into a reflect.Value on every parse: a template that uses no sprig function should not
// pay for it on each refresh.
func funcMapFor(text string) template.FuncMap {
	m := template.FuncMap{
		"env":          appGetenv,
		"mustEnv":      mustEnv,
		"envOrDefault": envOrDefault,
		"kvData":       kvData,

		"base64Encode":    base64Encode,
		"base64Decode":    base64Decode,
		"base64URLEncode": base64URLEncode,
		"base64URLDecode": base64URLDecode,

		"toJSON":                toJSON,
		"toJSONPretty":          toJSONPretty,
		"toUnescapedJSON":       toUnescapedJSON,
		"toUnescapedJSONPretty": toUnescapedJSONPretty,
		"toYAML":                toYAML,
		"toTOML":                toTOML,
		"parseJSON":             parseJSON,
		"parseYAML":             parseYAML,
		"parseBool":             parseBool,
		"parseInt":              parseInt,
		"parseUint":             parseUint,
		"parseFloat":            parseFloat,

		"trimSpace":       trimSpace,
		"toLower":         toLower,
		"toUpper":         toUpper,
		"toTitle":         toTitle,
		"trim":            trim,
		"trimPrefix":      trimPrefix,
		"trimSuffix":      trimSuffix,
		"replaceAll":      replaceAll,
		"regexMatch":      regexMatch,
		"regexReplaceAll": regexReplaceAll,
		"split":           split,
		"splitToMap":      splitToMap,
		"join":            join,
		"indent":          indent,

		"sha256Hex":     sha256Hex,
		"md5sum":        md5sum,
		"hmacSHA256Hex": hmacSHA256Hex,
		"timestamp":     timestamp,

		"contains":       contains,
		"in":             in,
		"containsAll":    containsSome(true, true),
		"containsAny":    containsSome(false, false),
		"containsNone":   containsSome(true, false),
		"containsNotAll": containsSome(false, true),
		"explodeMap":     explodeMap,
		"loop":           loop,

		"add":      add,
		"subtract": subtract,
		"multiply": multiply,
		"divide":   divide,
		"modulo":   modulo,
		"minimum":  minimum,
		"maximum":  maximum,
	}
	if strings.Contains(text, "sprig_") {
		addSprig(m)
	}
	return m
}

// maxExecuteDepth bounds executeTemplate nesting. Each call starts a fresh execution, which
// text/template's own depth limit does not see: a template that executes itself would otherwise
// grow the stack until the process dies (consul-template has that failure; here it is an error).
const maxExecuteDepth = 1000

// executeTemplateFunc runs a `define`d template of t, with nil or the given value as its dot,
// as consul-template's executeTemplate does.
func executeTemplateFunc(t **template.Template) func(string, ...any) (string, error) {
	depth := 0
	return func(name string, data ...any) (string, error) {
		if depth >= maxExecuteDepth {
			return "", fmt.Errorf("executeTemplate %q: nested more than %d deep", name, maxExecuteDepth)
		}
		depth++
		defer func() { depth-- }()
		var dot any
		switch len(data) {
		case 0:
		case 1:
			dot = data[0]
		default:
			return "", fmt.Errorf("executeTemplate: wrong number of arguments, expected 1 or 2, but got %d", len(data)+1)
		}
		var b bytes.Buffer
		if err := (*t).ExecuteTemplate(&b, name, dot); err != nil {
			return "", err
		}
		return b.String(), nil
	}
}
