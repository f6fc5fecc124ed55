// Package doctor owns `vault-injector doctor`: the checks that explain why a workload is or
// is not injected and whether its identities can log in to Vault and read what their
// templates read, and the checklist they print. Each check is one function returning
// findings; Run only gathers the objects the checks need and calls them in order. Nothing
// here prints or keeps a secret value or a token: tokens obtained for a check live in memory
// for that check and are revoked before it returns.
package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sync"
)

// Status is a check's verdict.
type Status string

const (
	// Pass: the check holds.
	Pass Status = "pass"
	// Fail: the check does not hold; the finding carries the fix.
	Fail Status = "fail"
	// Warn: the check could not be decided (missing input, an expression we cannot evaluate).
	Warn Status = "warn"
)

// marks are the checklist symbols per status.
var marks = map[Status]string{Pass: "✔", Fail: "✖", Warn: "!"}

// Finding is one line of the checklist.
type Finding struct {
	// Check is a stable identifier, e.g. "namespace-selector", for scripts.
	Check string `json:"check"`
	// Subject is what the check looked at: a pod, an identity, a path.
	Subject string `json:"subject,omitempty"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	// Fix says what to do; set on every Fail.
	Fix string `json:"fix,omitempty"`
}

func pass(check, subject, format string, args ...any) Finding {
	return Finding{Check: check, Subject: subject, Status: Pass, Message: fmt.Sprintf(format, args...)}
}

func fail(check, subject, fix, format string, args ...any) Finding {
	return Finding{Check: check, Subject: subject, Status: Fail, Message: fmt.Sprintf(format, args...), Fix: fix}
}

func warn(check, subject, fix, format string, args ...any) Finding {
	return Finding{Check: check, Subject: subject, Status: Warn, Message: fmt.Sprintf(format, args...), Fix: fix}
}

// Report is everything one run found.
type Report struct {
	Findings []Finding `json:"findings"`
	// Passed is true when every finding passed.
	Passed bool `json:"passed"`
	// Failed counts Fail findings, Undecided Warn findings.
	Failed    int `json:"failed"`
	Undecided int `json:"undecided"`
}

func (r *Report) add(f ...Finding) {
	for _, x := range f {
		x.Message = redact(x.Message)
		x.Fix = redact(x.Fix)
		r.Findings = append(r.Findings, x)
	}
}

// finish counts the verdicts.
func (r *Report) finish() {
	r.Failed, r.Undecided = 0, 0
	for _, f := range r.Findings {
		switch f.Status {
		case Fail:
			r.Failed++
		case Warn:
			r.Undecided++
		}
	}
	r.Passed = r.Failed == 0 && r.Undecided == 0
}

// ExitCode is 0 when every check passed, 1 when one failed, 3 when none failed but some could
// not be decided (2 is what the binary exits with for an unknown command).
func (r *Report) ExitCode() int {
	switch {
	case r.Failed > 0:
		return 1
	case r.Undecided > 0:
		return 3
	}
	return 0
}

// WriteText prints the checklist: one line per finding, the fix on the same line.
func (r *Report) WriteText(w io.Writer) error {
	subject := "\x00"
	for _, f := range r.Findings {
		if f.Subject != subject {
			subject = f.Subject
			if subject != "" {
				if _, err := fmt.Fprintf(w, "%s\n", subject); err != nil {
					return err
				}
			}
		}
		line := fmt.Sprintf("  %s %s", marks[f.Status], f.Message)
		if f.Fix != "" {
			line += "  → fix: " + f.Fix
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%d checks: %d failed, %d undecided\n", len(r.Findings), r.Failed, r.Undecided)
	return err
}

// WriteJSON prints the report for scripts.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// tokenLike matches what could be a credential quoted back in an error or a log line: Vault
// service/batch tokens and JWTs. Messages from Vault and agent logs should carry none, but a
// doctor must never be the one that prints one.
var tokenLike = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`\b(hv[sbr]\.[A-Za-z0-9_-]{8,}|s\.[A-Za-z0-9]{20,}|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)`)
})

func redact(s string) string { return tokenLike().ReplaceAllString(s, "[redacted]") }
