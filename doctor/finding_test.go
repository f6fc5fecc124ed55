package doctor

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestReportExitCode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		findings []Finding
		want     int
	}{
		{"all pass", []Finding{pass("a", "", "ok"), pass("b", "", "ok")}, 0},
		{"one fails", []Finding{pass("a", "", "ok"), fail("b", "", "do x", "bad"), warn("c", "", "", "?")}, 1},
		{"only undecided", []Finding{pass("a", "", "ok"), warn("c", "", "", "?")}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Report{}
			r.add(tc.findings...)
			r.finish()
			if got := r.ExitCode(); got != tc.want {
				t.Errorf("exit code %d, want %d", got, tc.want)
			}
			if r.Passed != (tc.want == 0) {
				t.Errorf("Passed = %v", r.Passed)
			}
		})
	}
}

func TestReportTextOneLinePerFinding(t *testing.T) {
	r := &Report{}
	r.add(pass("a", "pod ns/x", "first"), fail("b", "pod ns/x", "run this", "second"), warn("c", "pod ns/y", "look", "third"))
	r.finish()
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	want := "pod ns/x\n  ✔ first\n  ✖ second  → fix: run this\npod ns/y\n  ! third  → fix: look\n3 checks: 1 failed, 1 undecided\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestReportJSONParses(t *testing.T) {
	r := &Report{}
	r.add(fail("b", "s", "fix", "msg"))
	r.finish()
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Failed != 1 || back.Passed || back.Findings[0].Fix != "fix" || back.Findings[0].Status != Fail {
		t.Errorf("round trip: %+v", back)
	}
}

func TestFindingsNeverCarryTokens(t *testing.T) {
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
	for _, secret := range []string{"hvs.CAESIJ0123456789abcdef", "s.abcdefghijklmnopqrstuvwx", jwt} {
		r := &Report{}
		r.add(fail("x", "", "use "+secret, "Vault said: bad token %s here", secret))
		if got := r.Findings[0]; strings.Contains(got.Message, secret) || strings.Contains(got.Fix, secret) || !strings.Contains(got.Message, "[redacted]") {
			t.Errorf("%q not redacted: %+v", secret, got)
		}
	}
}
