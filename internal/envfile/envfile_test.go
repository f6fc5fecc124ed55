package envfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestEncodeRefusesWhatTheKubeletCannotCarry(t *testing.T) {
	cases := []struct {
		name   string
		vars   []Var
		reason string // substring of the error; "" = accepted
	}{
		{"plain", []Var{{"DB_USER", "v-app-x1"}, {"API_KEY", "s3cr=t #x"}}, ""},
		{"multi-line", []Var{{"PEM", "-----BEGIN-----\nabc\n-----END-----\n"}}, ""},
		{"dots and dashes", []Var{{"app.key-1", "v"}}, ""},
		{"quote", []Var{{"PW", "it's"}}, "single quote"},
		{"empty", []Var{{"PW", ""}}, "empty"},
		{"crlf", []Var{{"PW", "a\r\nb"}}, "carriage return"},
		{"cr before the closing quote", []Var{{"PW", "a\r"}}, ""},
		{"nul", []Var{{"PW", "a\x00b"}}, "NUL"},
		{"long line", []Var{{"PW", strings.Repeat("x", MaxLine)}}, "limit"},
		{"long second line", []Var{{"PW", "a\n" + strings.Repeat("x", MaxLine)}}, "limit"},
		{"long lines split", []Var{{"PW", strings.Repeat("x", MaxLine-10) + "\n" + strings.Repeat("y", MaxLine-10)}}, ""},
		{"duplicate", []Var{{"A", "1"}, {"A", "2"}}, "twice"},
		{"equals in name", []Var{{"A=B", "1"}}, "'='"},
		{"blank in name", []Var{{"A B", "1"}}, "blank"},
		{"comment name", []Var{{"#A", "1"}}, "comment"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := Encode(c.vars)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				back, err := Parse(out)
				if err != nil {
					t.Fatalf("Parse(Encode): %v", err)
				}
				if !reflect.DeepEqual(back, c.vars) {
					t.Fatalf("round trip: got %q, want %q", back, c.vars)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("Encode error = %v, want an *Error containing %q", err, c.reason)
			}
			if e.Name != c.vars[len(c.vars)-1].Name && c.name != "empty" {
				t.Fatalf("error names %q, want %q", e.Name, c.vars[len(c.vars)-1].Name)
			}
		})
	}
}

func TestParseFollowsTheKubeletsRules(t *testing.T) {
	in := "# comment\n\n  A='1' # trailing comment\nB= 'ignored'\nC='x\ny'\nA='second'\nE=''\nE='late'\n"
	got, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Var{{"A", "1"}, {"C", "x\ny"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"A=1\n", "A ='1'\n", "A='1' x\n", "A='1\n", "noequals\n"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted it", bad)
		}
	}
}

func FuzzEncodeParse(f *testing.F) {
	f.Add("A", "v", "B", "x\ny")
	f.Add("K", "'", "L", "")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string) {
		vars := []Var{{n1, v1}, {n2, v2}}
		out, err := Encode(vars)
		if err != nil {
			return
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Encode(%q)): %v", vars, err)
		}
		if !reflect.DeepEqual(back, vars) {
			t.Fatalf("round trip of %q gave %q", vars, back)
		}
	})
}
