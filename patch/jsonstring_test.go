package patch

import (
	"bytes"
	"encoding/json"
	"testing"
)

// AppendJSONString must encode exactly as encoding/json does: golden files and the answers the
// API server stores depend on the bytes.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `{"a":"b\\c"}`, "<&>\b\f\n\r\t\x00\x1f\x7f", "é\u2028\u2029x", "\xff\xfe bad", "{{ with secret \"kv\" }}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendJSONString([]byte("x"), s); !bytes.Equal(got[1:], want) {
			t.Fatalf("AppendJSONString(%q) = %s, encoding/json: %s", s, got[1:], want)
		}
	})
}
