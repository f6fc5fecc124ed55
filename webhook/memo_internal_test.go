package webhook

import (
	"strconv"
	"strings"
	"testing"

	"github.com/vault-injector/vault-injector/agentconfig"
)

func TestRequestMemoKeepsOnlyWhatRepeats(t *testing.T) {
	for _, tc := range []struct {
		name     string
		keys     []string
		wantLen  int
		wantHits []string // keys get must find afterwards
	}{
		{"never repeated: nothing kept", distinctKeys(1000), 0, nil},
		{"seen twice: kept", []string{"a", "b", "a"}, 1, []string{"a"}},
		{"a third sighting keeps one entry", []string{"a", "a", "a"}, 1, []string{"a"}},
		{"too long to key", []string{strings.Repeat("x", requestMemoKeyMax+1), strings.Repeat("x", requestMemoKeyMax+1)}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c requestMemo
			for _, k := range tc.keys {
				if _, ok := c.get(k); !ok {
					c.put(k, &agentconfig.Request{})
				}
			}
			if got := c.len(); got != tc.wantLen {
				t.Errorf("%d requests memoised, want %d", got, tc.wantLen)
			}
			for _, k := range tc.wantHits {
				if _, ok := c.get(k); !ok {
					t.Errorf("%q not memoised", k)
				}
			}
			if len(c.seen) > seenMax {
				t.Errorf("doorkeeper holds %d hashes, bound is %d", len(c.seen), seenMax)
			}
		})
	}
}

func TestRequestMemoBounded(t *testing.T) {
	var c requestMemo
	for _, k := range distinctKeys(3 * requestMemoMax) {
		c.put(k, &agentconfig.Request{})
		c.put(k, &agentconfig.Request{})
	}
	if got := c.len(); got > requestMemoMax || got == 0 {
		t.Errorf("%d requests memoised, want 1..%d", got, requestMemoMax)
	}
	for _, k := range distinctKeys(3 * seenMax) {
		c.put("once-"+k, &agentconfig.Request{})
	}
	if len(c.seen) > seenMax {
		t.Errorf("doorkeeper holds %d hashes, bound is %d", len(c.seen), seenMax)
	}
}

func distinctKeys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "vault-injector.io/secret-db\x00secret/data/db-" + strconv.Itoa(i)
	}
	return out
}
