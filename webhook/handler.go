package webhook

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/vault-injector/vault-injector/patch"
)

// MaxBodyBytes caps an AdmissionReview. The API server's own request limit is 3 MiB; a pod
// is far smaller, so anything above this is not a review we should read into memory.
const MaxBodyBytes = 4 << 20

// Outcome and reasons of requests that are not admission decisions.
const (
	outcomeError   Outcome = "error"
	reasonTooLarge         = "too-large"
	reasonBusy             = "too-many-in-flight"
)

var tooLargeMessage = fmt.Sprintf("request body exceeds %d bytes", MaxBodyBytes)

// review is the part of an AdmissionReview we decode. The object is decoded straight into the
// pod view, in the same pass as the review, and only the fields the patch needs: much cheaper
// than keeping it raw and decoding a whole corev1.Pod.
type review struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Request    *reviewRequest `json:"request"`

	// patchBuf holds the encoded patch until the answer is written; then it is recycled.
	patchBuf *[]byte
}

type reviewRequest struct {
	UID       types.UID                   `json:"uid"`
	Kind      metav1.GroupVersionKind     `json:"kind"`
	Namespace string                      `json:"namespace"`
	Name      string                      `json:"name"`
	Operation admissionv1.Operation       `json:"operation"`
	Object    *admittedPod                `json:"object"`
	SubRes    string                      `json:"subResource"`
	Resource  metav1.GroupVersionResource `json:"resource"`
}

// Handler serves POST /mutate.
type Handler struct {
	Mutator *Mutator
	Log     *slog.Logger
	Metrics *Metrics
	// Limits bound the requests served at once; the zero value means the defaults.
	Limits Limits

	inFlight inFlight
}

// httpError is a malformed request: answered with its status, never with a review.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	release, ok := h.admit(w, r)
	if !ok {
		return
	}
	defer release()
	start := time.Now()
	resp, rv, outcome, reason, err := h.handle(w, r)
	if err == nil && resp.Allowed && resp.Result == nil {
		// The common answers (allowed, with or without a patch) are written directly; see
		// appendAllowed.
		h.Metrics.observe(outcome, reason, time.Since(start))
		bp := bufPool.Get().(*[]byte)
		*bp = appendAllowed((*bp)[:0], rv.APIVersion, resp)
		// A declared length spares the chunked encoding net/http picks for bodies over 2 KiB:
		// fewer TLS records and writes per answer.
		h := w.Header()
		h["Content-Type"] = contentTypeJSON
		h["Content-Length"] = []string{strconv.Itoa(len(*bp))}
		_, _ = w.Write(*bp)
		putBuf(bp)
		if rv.patchBuf != nil {
			putBuf(rv.patchBuf)
		}
		return
	}
	h.Metrics.observe(outcome, reason, time.Since(start))
	if err != nil {
		var he *httpError
		status := http.StatusInternalServerError
		if errors.As(err, &he) {
			status = he.status
		}
		h.Log.Warn("rejected admission request", "status", status, "error", err.Error())
		http.Error(w, err.Error(), status)
		return
	}
	out := admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: rv.APIVersion, Kind: "AdmissionReview"}, Response: resp}
	body, err := json.Marshal(&out)
	if err != nil {
		h.Log.Error("encode admission response", "error", err.Error())
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// handle returns the response to send, or an error for a request that is not a valid review.
func (h *Handler) handle(w http.ResponseWriter, r *http.Request) (*admissionv1.AdmissionResponse, *review, Outcome, string, error) {
	const errReason = "bad-request"
	if r.Method != http.MethodPost {
		return nil, nil, outcomeError, "method", &httpError{http.StatusMethodNotAllowed, "method " + r.Method + " not allowed: POST an AdmissionReview"}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, nil, outcomeError, "content-type", &httpError{http.StatusUnsupportedMediaType,
			fmt.Sprintf("content type %q not supported: expected application/json", r.Header.Get("Content-Type"))}
	}
	var rv review
	// encoding/json/v2 (go-json-experiment): one pass over the bytes, cheap skipping of the
	// pod fields we do not read, and case-sensitive names as the API server uses.
	// As lenient as encoding/json on what the API server never sends (invalid UTF-8, duplicate
	// names); skipping the duplicate-name bookkeeping is also faster.
	if err := jsonv2.UnmarshalRead(http.MaxBytesReader(w, r.Body, MaxBodyBytes), &rv, decodeOptions); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, nil, outcomeError, reasonTooLarge, &httpError{http.StatusRequestEntityTooLarge, tooLargeMessage}
		}
		return nil, nil, outcomeError, errReason, &httpError{http.StatusBadRequest, "decode AdmissionReview: " + err.Error()}
	}
	switch {
	case rv.Kind != "AdmissionReview" || (rv.APIVersion != "admission.k8s.io/v1" && rv.APIVersion != "admission.k8s.io/v1beta1"):
		return nil, nil, outcomeError, errReason, &httpError{http.StatusBadRequest,
			fmt.Sprintf("got %s %q: expected kind AdmissionReview, apiVersion admission.k8s.io/v1 or v1beta1", rv.Kind, rv.APIVersion)}
	case rv.Request == nil:
		return nil, nil, outcomeError, errReason, &httpError{http.StatusBadRequest, "AdmissionReview has no request"}
	case rv.Request.UID == "":
		return nil, nil, outcomeError, errReason, &httpError{http.StatusBadRequest, "AdmissionReview request has no uid"}
	}
	req := rv.Request
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	isPod := req.Kind.Group == "" && req.Kind.Kind == "Pod" && req.SubRes == ""
	if !isPod || req.Operation != admissionv1.Create {
		// Only pod creation is ours; anything else the configuration sends us passes untouched.
		return resp, &rv, Skipped, "not-pod-create", nil
	}
	if req.Object == nil {
		return nil, nil, outcomeError, errReason, &httpError{http.StatusBadRequest, "AdmissionReview request has no object"}
	}
	res := h.Mutator.MutatePodAs(&req.Object.Pod, &req.Object.runAs, req.Namespace)
	h.Metrics.observePolicy(&res)
	name := req.Name
	if name == "" {
		name = req.Object.DisplayName()
	}
	// Attributes are passed per call, not bound with Log.With, which would allocate on every
	// request even when the level is disabled.
	attrs := func(kv ...any) []any {
		return append([]any{"uid", string(req.UID), "namespace", req.Namespace, "pod", name}, kv...)
	}
	switch res.Outcome {
	case Injected:
		rv.patchBuf = bufPool.Get().(*[]byte)
		p, err := patch.AppendMarshal((*rv.patchBuf)[:0], res.Patch)
		*rv.patchBuf = p
		if err != nil {
			return nil, nil, outcomeError, "encode-patch", fmt.Errorf("encode patch: %w", err)
		}
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType, resp.Warnings = p, &pt, res.Warnings
		if h.Log.Enabled(r.Context(), slog.LevelInfo) {
			h.Log.Info("injected", attrs("operations", len(res.Patch))...)
		}
	case Denied:
		msg := res.DenialMessage(name)
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden, Message: msg}
		h.Log.Info("denied", attrs("reason", res.Reason, "error", res.Err.Error())...)
	default:
		if h.Log.Enabled(r.Context(), slog.LevelDebug) {
			h.Log.Debug("skipped", attrs("reason", res.Reason)...)
		}
	}
	return resp, &rv, res.Outcome, res.Reason, nil
}

var contentTypeJSON = []string{"application/json"}

var decodeOptions = jsonv2.JoinOptions(jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))

// bufPool recycles response buffers: a patched answer is several KiB, and allocating it per
// request shows up as GC work under load.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// putBuf recycles a buffer unless an unusual pod made it large.
func putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		bufPool.Put(b)
	}
}

// appendAllowed encodes an allowed AdmissionReview response as encoding/json would encode
// admissionv1.AdmissionReview, without reflection: this is the hot path of every admission.
func appendAllowed(buf []byte, apiVersion string, resp *admissionv1.AdmissionResponse) []byte {
	buf = append(buf, `{"kind":"AdmissionReview","apiVersion":`...)
	buf = appendJSON(buf, apiVersion)
	buf = append(buf, `,"response":{"uid":`...)
	buf = appendJSON(buf, string(resp.UID))
	buf = append(buf, `,"allowed":true`...)
	if resp.PatchType != nil {
		buf = append(buf, `,"patch":"`...)
		buf = base64.StdEncoding.AppendEncode(buf, resp.Patch)
		buf = append(buf, `","patchType":`...)
		buf = appendJSON(buf, string(*resp.PatchType))
	}
	if len(resp.Warnings) > 0 {
		buf = append(buf, `,"warnings":[`...)
		for i, w := range resp.Warnings {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSON(buf, w)
		}
		buf = append(buf, ']')
	}
	return append(buf, "}}"...)
}

func appendJSON(buf []byte, s string) []byte { return patch.AppendJSONString(buf, s) }
