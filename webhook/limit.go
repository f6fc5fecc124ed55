package webhook

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
)

// Defaults of the in-flight caps. Admission costs ~30 µs of CPU for a typical pod, so on the
// chart's 2 cores 64 requests in flight are already ~1 ms of queued work: more concurrency
// only adds latency and memory, and the API server retries a 429 with Retry-After after a
// second, within the webhook's timeoutSeconds. The byte budget is what bounds memory: a
// review costs up to ~10 times its size while it is decoded and answered (a 3 MiB pod whose
// env the agent container copies allocates 29 MiB), so 8 MiB of bodies in flight (two
// reviews at the API server's 3 MiB request limit) keeps a burst of huge reviews inside the
// chart's 128 Mi limit, while typical pods (~5 KiB) never come near it.
const (
	DefaultMaxInFlight      = 64
	DefaultMaxInFlightBytes = 8 << 20
)

// Limits bound the admission requests served at once. A request beyond either cap is answered
// 429 with Retry-After: 1 at once, without reading its body: client-go retries a 429 only when
// that header is present.
type Limits struct {
	// MaxInFlight caps the requests being served; 0 means DefaultMaxInFlight.
	MaxInFlight int
	// MaxInFlightBytes caps the sum of their declared body sizes (a body of unknown size counts
	// as MaxBodyBytes); 0 means DefaultMaxInFlightBytes. It is raised to MaxBodyBytes if lower,
	// so that a single review of any accepted size can be served.
	MaxInFlightBytes int64
}

// inFlight counts what is being served. It never queues: waiting would hold the connection
// and its buffers, which is the memory the cap is there to bound.
type inFlight struct {
	mu       sync.Mutex
	n        int
	bytes    int64
	maxN     int
	maxBytes int64
	once     sync.Once
}

func (f *inFlight) init(l Limits) {
	f.once.Do(func() {
		f.maxN, f.maxBytes = l.MaxInFlight, l.MaxInFlightBytes
		if f.maxN <= 0 {
			f.maxN = DefaultMaxInFlight
		}
		if f.maxBytes <= 0 {
			f.maxBytes = DefaultMaxInFlightBytes
		}
		f.maxBytes = max(f.maxBytes, MaxBodyBytes)
	})
}

// acquire reserves one request of weight bytes; false means a cap is reached.
func (f *inFlight) acquire(weight int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n >= f.maxN || f.bytes+weight > f.maxBytes {
		return false
	}
	f.n++
	f.bytes += weight
	return true
}

func (f *inFlight) release(weight int64) {
	f.mu.Lock()
	f.n--
	f.bytes -= weight
	f.mu.Unlock()
}

// bodyWeight is what a request counts against the byte budget: its declared length, or the
// most it may send when it declares none (chunked).
func bodyWeight(r *http.Request) int64 {
	if r.ContentLength >= 0 && r.ContentLength <= MaxBodyBytes {
		return max(r.ContentLength, 1)
	}
	return MaxBodyBytes
}

// admit applies the size and in-flight caps before the body is read. It answers the request
// itself and returns ok=false when a cap applies; otherwise the caller must call release.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	if r.ContentLength > MaxBodyBytes {
		// Declared too large: refused without reading a byte of it.
		h.Metrics.reject(reasonTooLarge)
		http.Error(w, tooLargeMessage, http.StatusRequestEntityTooLarge)
		return nil, false
	}
	h.inFlight.init(h.Limits)
	weight := bodyWeight(r)
	if !h.inFlight.acquire(weight) {
		h.Metrics.reject(reasonBusy)
		w.Header().Set("Retry-After", "1")
		http.Error(w, fmt.Sprintf("too many admission requests in flight (cap %d requests, %s of bodies): retry", h.inFlight.maxN, byteSize(h.inFlight.maxBytes)), http.StatusTooManyRequests)
		return nil, false
	}
	return func() { h.inFlight.release(weight) }, true
}

// byteSize renders a byte count for messages: whole MiB or KiB when exact.
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
