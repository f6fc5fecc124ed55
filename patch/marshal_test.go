package patch

import (
	"encoding/json"
	"reflect"
	"testing"
)

// Marshal must produce the same JSON value as encoding/json for any operations.
func TestMarshalMatchesEncodingJSON(t *testing.T) {
	ops := []Operation{
		{Op: "add", Path: "/metadata/annotations/vault-injector.io~1status", Value: `{"a":"<b>"}`},
		{Op: "add", Path: "/spec/volumes", Value: []any{json.RawMessage(`{"name":"v"}`), map[string]int{"x": 1}}},
		{Op: "add", Path: "/weird\"path\x01é", Value: json.RawMessage(`[1,2]`)},
		{Op: "add", Path: "/spec/containers/-", Value: nil},
	}
	got, err := Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("Marshal wrote invalid JSON %s: %v", got, err)
	}
	_ = json.Unmarshal(want, &w)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
