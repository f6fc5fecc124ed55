// Package glob owns the one wildcard syntax of policies: the admission policy matches
// namespaces, service accounts, roles and Vault paths with it, and the agent matches the paths
// it reads at render time with the same code, so both sides agree on what a pattern allows.
//
// `*` matches any run of characters except `/`, `**` any run including `/`, `?` one character
// other than `/`; every other character matches itself. There are no character classes, so no
// pattern is ever malformed except by being empty.
package glob

import (
	"errors"
	"strings"
)

// Validate reports a pattern Match cannot use.
func Validate(pattern string) error {
	if pattern == "" {
		return errors.New("empty pattern: expected a name or a glob like shop-* (use \"*\" for any)")
	}
	if strings.Contains(pattern, "***") {
		return errors.New("\"***\" is ambiguous: use * (within one path segment) or ** (across segments)")
	}
	return nil
}

// Match reports whether s matches pattern.
func Match(pattern, s string) bool {
	// Dynamic programming over (token, position) instead of backtracking: `*` and `**` mixed
	// in one pattern defeat the usual last-star backtracking, and recursion would let a
	// hostile pattern cost exponential time. O(len(pattern)·len(s)) time, O(len(s)) memory.
	toks := tokens(pattern)
	// next[j]: toks[k+1:] matches s[j:]; cur[j]: toks[k:] matches s[j:].
	next := make([]bool, len(s)+1)
	cur := make([]bool, len(s)+1)
	next[len(s)] = true
	for k := len(toks) - 1; k >= 0; k-- {
		t := toks[k]
		cur[len(s)] = (t.kind == starSeg || t.kind == starAll) && next[len(s)]
		for j := len(s) - 1; j >= 0; j-- {
			c := s[j]
			switch t.kind {
			case literal:
				cur[j] = c == t.b && next[j+1]
			case one:
				cur[j] = c != '/' && next[j+1]
			case starSeg:
				cur[j] = next[j] || (c != '/' && cur[j+1])
			case starAll:
				cur[j] = next[j] || cur[j+1]
			}
		}
		next, cur = cur, next
	}
	return next[0]
}

type tokenKind uint8

const (
	literal tokenKind = iota
	one               // ?
	starSeg           // *
	starAll           // **
)

type token struct {
	kind tokenKind
	b    byte
}

func tokens(pattern string) []token {
	toks := make([]token, 0, len(pattern))
	for i := 0; i < len(pattern); i++ {
		switch {
		case pattern[i] == '*' && i+1 < len(pattern) && pattern[i+1] == '*':
			toks = append(toks, token{kind: starAll})
			i++
		case pattern[i] == '*':
			toks = append(toks, token{kind: starSeg})
		case pattern[i] == '?':
			toks = append(toks, token{kind: one})
		default:
			toks = append(toks, token{kind: literal, b: pattern[i]})
		}
	}
	return toks
}

// MatchAny reports whether s matches one of patterns.
func MatchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if Match(p, s) {
			return true
		}
	}
	return false
}
