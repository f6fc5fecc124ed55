// Package envfile owns the env-file format shared by the agent, which writes the app's
// environment variables into a memory volume, and the two readers of that file: the kubelet
// (env[].valueFrom.fileKeyRef, Kubernetes ≥ 1.35) and `vault-injector exec`. It writes only
// what the kubelet's strict parser reads back unchanged, and refuses the rest by name.
//
// The kubelet reads KEY='value' lines: single quotes only, no escapes, so a value holding `'`
// cannot be written; an empty value reads as a missing key and fails the container's start; a
// line is read by bufio.Scanner, so `\r` before a newline is dropped and a line of 64 KiB or more
// fails the whole file; the first of two equal keys wins.
package envfile

import (
	"bytes"
	"fmt"
	"strings"
)

// MaxLine is the longest line the kubelet reads (bufio.MaxScanTokenSize, newline excluded, minus
// one: a token must fit the buffer with room to spare).
const MaxLine = 64*1024 - 1

// Var is one variable.
type Var struct {
	Name, Value string
}

// Error names the variable that cannot be written and why.
type Error struct {
	Name, Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("environment variable %s cannot be passed through the env file: %s", e.Name, e.Reason)
}

// CheckName reports whether name can be a key of the file: what the kubelet accepts as a
// fileKeyRef key (printable ASCII without '=') and what its parser reads back as the same name
// (no leading blank or '#').
func CheckName(name string) error {
	if name == "" {
		return &Error{Name: `""`, Reason: "the name is empty"}
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x21 || c > 0x7e || c == '=' {
			return &Error{Name: name, Reason: "a name holds printable ASCII other than '=' and blanks"}
		}
	}
	if name[0] == '#' {
		return &Error{Name: name, Reason: "a name cannot start with '#' (the line would be a comment)"}
	}
	return nil
}

// CheckValue reports whether value survives the round trip through the kubelet's parser.
func CheckValue(name, value string) error {
	switch {
	case value == "":
		return &Error{Name: name, Reason: "its value is empty, which the kubelet reads as a missing key and then refuses to start the container"}
	case strings.IndexByte(value, '\'') >= 0:
		return &Error{Name: name, Reason: "its value contains a single quote ('), which the env-file format cannot represent"}
	case strings.IndexByte(value, 0) >= 0:
		return &Error{Name: name, Reason: "its value contains a NUL byte, which no environment variable can hold"}
	case strings.Contains(value, "\r\n"):
		return &Error{Name: name, Reason: `its value contains a carriage return before a line end, which the kubelet would drop ("\r\n" becomes "\n")`}
	}
	// The first line carries NAME=' and the last the closing quote.
	lines := strings.Split(value, "\n")
	for i, l := range lines {
		n := len(l)
		if i == 0 {
			n += len(name) + 2
		}
		if i == len(lines)-1 {
			n++
		}
		if n > MaxLine {
			return &Error{Name: name, Reason: fmt.Sprintf("a line of its value is %d bytes long in the file, above the kubelet's limit of %d", n, MaxLine)}
		}
	}
	return nil
}

// Encode writes vars, in the given order, one NAME='value' each. Names must be unique.
func Encode(vars []Var) ([]byte, error) {
	var b bytes.Buffer
	seen := make(map[string]bool, len(vars))
	for _, v := range vars {
		if err := CheckName(v.Name); err != nil {
			return nil, err
		}
		if seen[v.Name] {
			return nil, &Error{Name: v.Name, Reason: "it is defined twice (the kubelet would read only the first)"}
		}
		seen[v.Name] = true
		if err := CheckValue(v.Name, v.Value); err != nil {
			return nil, err
		}
		b.WriteString(v.Name)
		b.WriteString("='")
		b.WriteString(v.Value)
		b.WriteString("'\n")
	}
	return b.Bytes(), nil
}

// Parse reads what Encode writes (and the kubelet's subset of it: comments, blank lines,
// leading blanks, a comment after the closing quote). The first of two equal names wins, as in
// the kubelet. It is for `vault-injector exec`, which must see the same values the kubelet would.
func Parse(data []byte) ([]Var, error) {
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	lines := strings.Split(text, "\n")
	var out []Var
	seen := map[string]bool{}
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		line := strings.TrimLeft(lines[i], " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		if len(lines[i]) > MaxLine {
			return nil, fmt.Errorf("env file line %d is longer than %d bytes", lineNo, MaxLine)
		}
		eq := strings.IndexByte(line, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("env file line %d: expected NAME='value'", lineNo)
		}
		name := line[:eq]
		if strings.TrimRight(name, " \t") != name {
			return nil, fmt.Errorf("env file line %d: blank before '='", lineNo)
		}
		rest := line[eq+1:]
		if rest == "" || rest[0] == ' ' || rest[0] == '\t' {
			// NAME= 'x' assigns nothing, as in a shell and the kubelet.
			continue
		}
		if rest[0] != '\'' {
			return nil, fmt.Errorf("env file line %d: the value of %s must be in single quotes", lineNo, name)
		}
		rest = rest[1:]
		var val strings.Builder
		for {
			if q := strings.IndexByte(rest, '\''); q >= 0 {
				val.WriteString(rest[:q])
				after := strings.TrimLeft(rest[q+1:], " \t")
				if after != "" && after[0] != '#' {
					return nil, fmt.Errorf("env file line %d: unexpected text after the closing quote of %s", i+1, name)
				}
				break
			}
			val.WriteString(rest)
			val.WriteByte('\n')
			i++
			if i >= len(lines) {
				return nil, fmt.Errorf("env file line %d: the value of %s has no closing quote", lineNo, name)
			}
			rest = lines[i]
		}
		// The kubelet stops at the first line with the name it looks for, even when its value
		// is empty (then the key counts as missing).
		if !seen[name] {
			seen[name] = true
			if val.Len() > 0 {
				out = append(out, Var{Name: name, Value: val.String()})
			}
		}
	}
	return out, nil
}
