package agent

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func renderString(t *testing.T, text string) string {
	t.Helper()
	out, err := render(context.Background(), tmpl{name: "t", text: text}, fixedFetch)
	if err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	return string(out)
}

// The nondeterministic functions are checked by their properties; the differential test cannot
// compare their output with consul-template's.

func TestTimestampProperties(t *testing.T) {
	before := time.Now().UTC().Truncate(time.Second)
	got := renderString(t, `{{ timestamp }}|{{ timestamp "unix" }}|{{ timestamp "2006-01-02" }}`)
	after := time.Now().UTC()
	parts := strings.Split(got, "|")
	ts, err := time.Parse(time.RFC3339, parts[0])
	if err != nil || !strings.HasSuffix(parts[0], "Z") {
		t.Fatalf("timestamp %q is not RFC 3339 in UTC: %v", parts[0], err)
	}
	if ts.Before(before) || ts.After(after) {
		t.Errorf("timestamp %v not between %v and %v", ts, before, after)
	}
	unix, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || unix < before.Unix() || unix > after.Unix() {
		t.Errorf("timestamp unix %q not between %d and %d", parts[1], before.Unix(), after.Unix())
	}
	if parts[2] != before.Format("2006-01-02") && parts[2] != after.Format("2006-01-02") {
		t.Errorf("timestamp layout gave %q", parts[2])
	}
	if _, err := render(context.Background(), tmpl{name: "t", text: `{{ timestamp "a" "b" }}`}, fixedFetch); err == nil || !strings.Contains(err.Error(), "wrong number of arguments") {
		t.Errorf("two arguments: %v", err)
	}
}

func TestTimestampUsesClock(t *testing.T) {
	old := now
	now = func() time.Time { return time.Date(2024, 2, 29, 13, 4, 5, 0, time.UTC) }
	defer func() { now = old }()
	if got := renderString(t, `{{ timestamp }} {{ timestamp "unix" }} {{ timestamp "15:04" }}`); got != "2024-02-29T13:04:05Z 1709211845 13:04" {
		t.Errorf("got %q", got)
	}
}

func TestSprigNondeterministicProperties(t *testing.T) {
	hash := renderString(t, `{{ sprig_bcrypt "s3cret" }}`)
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret")); err != nil {
		t.Errorf("sprig_bcrypt %q does not verify: %v", hash, err)
	}
	if h2 := renderString(t, `{{ sprig_bcrypt "s3cret" }}`); h2 == hash {
		t.Error("sprig_bcrypt gave the same salt twice")
	}
	ht := renderString(t, `{{ sprig_htpasswd "bob" "pw" }}`)
	user, h, ok := strings.Cut(ht, ":")
	if !ok || user != "bob" || bcrypt.CompareHashAndPassword([]byte(h), []byte("pw")) != nil {
		t.Errorf("sprig_htpasswd %q", ht)
	}
	if got := renderString(t, `{{ sprig_encryptAES "k" "plain text" | sprig_decryptAES "k" }}`); got != "plain text" {
		t.Errorf("encryptAES/decryptAES round trip gave %q", got)
	}
	a := renderString(t, `{{ sprig_encryptAES "k" "x" }}`)
	if b := renderString(t, `{{ sprig_encryptAES "k" "x" }}`); a == b {
		t.Error("sprig_encryptAES reused its IV")
	}
	key := renderString(t, `{{ sprig_genPrivateKey "ecdsa" }}`)
	block, _ := pem.Decode([]byte(key))
	if block == nil {
		t.Fatalf("sprig_genPrivateKey gave no PEM: %q", key)
	}
	if _, err := x509.ParseECPrivateKey(block.Bytes); err != nil {
		t.Errorf("sprig_genPrivateKey: %v", err)
	}
	shuffled := renderString(t, `{{ sprig_shuffle "abcdef" }}`)
	if len(shuffled) != 6 || strings.Trim(shuffled, "abcdef") != "" {
		t.Errorf("sprig_shuffle gave %q", shuffled)
	}
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(renderString(t, `{{ sprig_sha1sum (sprig_encryptAES "k" "x") }}`)) {
		t.Error("sha1sum of a random value is not hex")
	}
}

// consul-template's hermetic sprig map leaves out the functions that read the clock, the
// environment, the network or a random source: they are not defined there, nor here.
func TestSprigHermeticOnly(t *testing.T) {
	for _, name := range []string{"sprig_env", "sprig_expandenv", "sprig_now", "sprig_date", "sprig_randAlpha", "sprig_uuidv4", "sprig_getHostByName"} {
		_, err := render(context.Background(), tmpl{name: "t", text: `{{ ` + name + ` }}`}, fixedFetch)
		if err == nil || !strings.Contains(err.Error(), "not defined") {
			t.Errorf("%s: %v, want not defined", name, err)
		}
	}
	m := funcMap()
	n := 0
	for k := range m {
		if strings.HasPrefix(k, "sprig_") {
			n++
		}
	}
	if n < 150 {
		t.Errorf("%d sprig_ functions, want sprig's hermetic set", n)
	}
}

func TestScratchIsPerTemplate(t *testing.T) {
	if got := renderString(t, `{{ scratch.Set "a" 1 }}{{ scratch.Get "a" }}`); got != "1" {
		t.Fatalf("got %q", got)
	}
	if got := renderString(t, `{{ scratch.Key "a" }}`); got != "false" {
		t.Errorf("a value set by another render is visible: %q", got)
	}
	_, err := render(context.Background(), tmpl{name: "t", text: `{{ scratch.Set "a" 1 }}{{ scratch.MapSet "a" "k" 2 }}`}, fixedFetch)
	if err == nil || !strings.Contains(err.Error(), `"a" is not a map`) {
		t.Errorf("MapSet on a non-map: %v", err)
	}
}

func TestFunctionErrors(t *testing.T) {
	for text, want := range map[string]string{
		`{{ divide 0 1 }}`:                  "divide by zero",
		`{{ modulo 0 1 }}`:                  "divide by zero",
		`{{ modulo 2 1.5 }}`:                "modulo: unknown type",
		`{{ add "1" 2 }}`:                   "add: unknown type",
		`{{ parseInt "x" }}`:                "parseInt",
		`{{ parseBool "maybe" }}`:           "parseBool",
		`{{ mustEnv "VI_TEST_UNSET_VAR" }}`: "required environment variable VI_TEST_UNSET_VAR is empty",
		`{{ loop 1 2 3 }}`:                  "loop: wrong number of arguments",
		`{{ executeTemplate "x" 1 2 }}`:     "executeTemplate: wrong number of arguments",
		`{{ define "x" }}{{ executeTemplate "x" }}{{ end }}{{ executeTemplate "x" }}`: "nested more than",
		`{{ parseYAML "a: [" }}`: "parseYAML",
	} {
		_, err := render(context.Background(), tmpl{name: "t", text: text}, fixedFetch)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", text, err, want)
		}
	}
}

func TestLoopStopsEarly(t *testing.T) {
	// A failing body ends the loop without leaving anything running.
	_, err := render(context.Background(), tmpl{name: "t", text: `{{ range loop 1000000000 }}{{ if eq . 3 }}{{ divide 0 1 }}{{ end }}{{ end }}`}, fixedFetch)
	if err == nil || !strings.Contains(err.Error(), "divide by zero") {
		t.Fatalf("error %v, want the body's", err)
	}
	if got := renderString(t, `{{ range loop 3 }}{{ if eq . 1 }}{{ break }}{{ end }}{{ . }}{{ end }}`); got != "0" {
		t.Errorf("break: %q", got)
	}
}
