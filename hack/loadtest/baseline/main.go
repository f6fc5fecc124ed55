// Command baseline is the do-nothing webhook `make bench` compares vault-injector with: it
// decodes the AdmissionReview and the pod the usual way (into k8s.io/api types) and answers
// allowed, without a patch.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address")
	cert := flag.String("tls-cert-file", "", "certificate")
	key := flag.String("tls-key-file", "", "key")
	flag.Parse()
	http.HandleFunc("/mutate", func(w http.ResponseWriter, r *http.Request) {
		var rv admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&rv); err != nil || rv.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		var pod corev1.Pod
		if err := json.Unmarshal(rv.Request.Object.Raw, &pod); err != nil {
			http.Error(w, "bad pod", http.StatusBadRequest)
			return
		}
		rv.Response = &admissionv1.AdmissionResponse{UID: rv.Request.UID, Allowed: true}
		rv.Request = nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&rv)
	})
	log.Fatal(http.ListenAndServeTLS(*listen, *cert, *key, nil))
}
