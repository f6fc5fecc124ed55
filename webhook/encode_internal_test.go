package webhook

import (
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// appendAllowed must say exactly what encoding/json says for the same response.
func TestAppendAllowedMatchesEncodingJSON(t *testing.T) {
	pt := admissionv1.PatchTypeJSONPatch
	for _, resp := range []*admissionv1.AdmissionResponse{
		{UID: "u-1", Allowed: true},
		{UID: `weird"uid<>`, Allowed: true, Patch: []byte(`[{"op":"add","path":"/a","value":1}]`), PatchType: &pt},
		{UID: "u-2", Allowed: true, Patch: []byte(`[]`), PatchType: &pt, Warnings: []string{"one", `two "quoted" <b>`}},
	} {
		for _, v := range []string{"admission.k8s.io/v1", "admission.k8s.io/v1beta1"} {
			want, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: v, Kind: "AdmissionReview"}, Response: resp})
			if err != nil {
				t.Fatal(err)
			}
			if got := appendAllowed(nil, v, resp); string(got) != string(want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		}
	}
}
