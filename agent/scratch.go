package agent

import (
	"fmt"
	"sort"
)

// Scratch is consul-template's per-template scratchpad (`{{ scratch.Set "k" v }}`): it lives for
// one render of one template, so nothing leaks between templates or renders. Its methods and
// their results are consul-template v0.41.1's.
type Scratch struct {
	values map[string]any
}

// Key reports whether k is set.
func (s *Scratch) Key(k string) bool {
	_, ok := s.values[k]
	return ok
}

// Get returns the value at k (nil when unset: `<no value>` when printed).
func (s *Scratch) Get(k string) any { return s.values[k] }

// Set stores v at k, replacing any value.
func (s *Scratch) Set(k string, v any) string {
	s.init()
	s.values[k] = v
	return ""
}

// SetX stores v at k unless k is set.
func (s *Scratch) SetX(k string, v any) string {
	s.init()
	if _, ok := s.values[k]; !ok {
		s.values[k] = v
	}
	return ""
}

// MapSet stores v at key mk of the map named k (created when missing).
func (s *Scratch) MapSet(k, mk string, v any) (string, error) {
	s.init()
	return s.mapSet(k, mk, v, true)
}

// MapSetX is MapSet that keeps an existing mk.
func (s *Scratch) MapSetX(k, mk string, v any) (string, error) {
	s.init()
	return s.mapSet(k, mk, v, false)
}

func (s *Scratch) mapSet(k, mk string, v any, overwrite bool) (string, error) {
	if _, ok := s.values[k]; !ok {
		s.values[k] = map[string]any{}
	}
	m, ok := s.values[k].(map[string]any)
	if !ok {
		return "", fmt.Errorf("%q is not a map", k)
	}
	if _, ok := m[mk]; overwrite || !ok {
		m[mk] = v
	}
	return "", nil
}

// MapValues returns the values of the map named k sorted by key (nil when k is not a map).
func (s *Scratch) MapValues(k string) ([]any, error) {
	m, ok := s.values[k].(map[string]any)
	if !ok {
		return nil, nil
	}
	keys := make([]string, 0, len(m))
	for mk := range m {
		keys = append(keys, mk)
	}
	sort.Strings(keys)
	out := make([]any, len(keys))
	for i, mk := range keys {
		out[i] = m[mk]
	}
	return out, nil
}

func (s *Scratch) init() {
	if s.values == nil {
		s.values = map[string]any{}
	}
}
