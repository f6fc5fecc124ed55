package doctor

import (
	"reflect"
	"testing"
)

func TestTemplateUses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		text    string
		want    []vaultUse
		dynamic int
		wantErr bool
	}{
		{"with", `{{ with secret "kv/data/app" }}{{ .Data.data.password }}{{ end }}`, []vaultUse{{"kv/data/app", "read"}}, 0, false},
		{"pipe and range", `{{ range $k, $v := (secret "secret/a").Data }}{{ $k }}{{ end }}{{ secret "secret/b" | toJSON }}`, []vaultUse{{"secret/a", "read"}, {"secret/b", "read"}}, 0, false},
		{"write", `{{ with secret "pki/issue/web" "common_name=a.example" }}{{ .Data.certificate }}{{ end }}`, []vaultUse{{"pki/issue/web", "update"}}, 0, false},
		{"if else nested define", `{{ define "x" }}{{ with secret "kv/x" }}{{ end }}{{ end }}{{ if true }}{{ else }}{{ with secret "kv/y" }}{{ end }}{{ end }}`, []vaultUse{{"kv/x", "read"}, {"kv/y", "read"}}, 0, false},
		{"dynamic path", `{{ with secret (printf "kv/%s" (env "APP")) }}{{ end }}`, nil, 1, false},
		{"unknown functions parse", `{{ sprig_upper "a" }}{{ base64URLEncode "x" }}`, nil, 0, false},
		{"no vault", `plain text`, nil, 0, false},
		{"syntax error", `{{ with secret "a" }}`, nil, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, dyn, err := templateUses("t", tc.text)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			got = dedupe(got)
			if !reflect.DeepEqual(got, tc.want) || dyn != tc.dynamic {
				t.Errorf("got %v (dynamic %d), want %v (dynamic %d)", got, dyn, tc.want, tc.dynamic)
			}
		})
	}
}

func FuzzTemplateUses(f *testing.F) {
	for _, s := range []string{`{{ with secret "a" }}{{ end }}`, `{{ secret }}`, `{{ range secret "x" "y=z" }}{{ end }}`, `{{`, `{{ template "x" secret "p" }}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		uses, dyn, err := templateUses("fuzz", text)
		if err != nil && (len(uses) > 0 || dyn > 0) {
			t.Errorf("error %v with results %v %d", err, uses, dyn)
		}
	})
}
