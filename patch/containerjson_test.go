package patch

import (
	"reflect"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// The hand-written container decoder must decode what the reflective one decodes, and fail
// where it fails, under the webhook's options.
func FuzzContainerDecode(f *testing.F) {
	for _, s := range []string{
		`{"name":"app","image":"x","env":[{"name":"A","value":"1"},{"name":"B","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],"ports":[{"containerPort":80}]}`,
		`{"name":"a","envFrom":[{"configMapRef":{"name":"c"},"prefix":"P_"}],"volumeMounts":[{"name":"v","mountPath":"/m"}],"restartPolicy":"Always"}`,
		`{"name":"a","command":["/bin/app","-x"],"livenessProbe":{"exec":{"command":["x"]}}}`, `{"command":null,"livenessProbe":null}`, `{"livenessProbe":[]}`,
		`null`, `{}`, `{"name":5}`, `{"Name":"case"}`, `{"name":"a","name":"b"}`, `[]`, `{"env":null,"volumeMounts":{}}`,
	} {
		f.Add(s)
	}
	opts := jsonv2.JoinOptions(jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))
	f.Fuzz(func(t *testing.T, in string) {
		var fast []Container
		var slow []containerFields
		errFast := jsonv2.Unmarshal([]byte("["+in+"]"), &fast, opts)
		errSlow := jsonv2.Unmarshal([]byte("["+in+"]"), &slow, opts)
		if (errFast == nil) != (errSlow == nil) {
			t.Fatalf("%s: hand-written error %v, reflective error %v", in, errFast, errSlow)
		}
		if errFast != nil {
			return
		}
		for i := range fast {
			if !reflect.DeepEqual(containerFields(fast[i]), slow[i]) {
				t.Fatalf("%s: hand-written %+v, reflective %+v", in, fast[i], slow[i])
			}
		}
	})
}
