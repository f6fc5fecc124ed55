package webhook

import (
	"hash/maphash"
	"sort"
	"strings"
	"sync"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// Requests are memoised by the pod's annotations under our prefix, which decide them entirely:
// the pods of one Deployment carry the same ones, so most admissions parse and encode nothing.
// The memo is bounded in entries and in key size (templates can be long).
//
// A request is memoised the second time its annotations are seen (a doorkeeper, as TinyLFU
// caches have): a stream of pods that never repeat — many Deployments, a rollout of changed
// pods — would otherwise keep up to requestMemoMax parsed requests alive that no later
// admission uses, a larger heap for the collector to scan and a higher peak RSS.
const (
	requestMemoMax    = 256
	requestMemoKeyMax = 16 << 10
	// seenMax bounds the doorkeeper: hashes of annotation sets met once, 8 bytes each.
	seenMax = 4096
)

type requestMemo struct {
	mu       sync.Mutex
	seed     maphash.Seed
	seen     map[uint64]struct{}
	requests map[string]*agentconfig.Request
}

func (c *requestMemo) get(key string) (*agentconfig.Request, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	req, ok := c.requests[key]
	return req, ok
}

// put memoises req under key if key was seen before.
func (c *requestMemo) put(key string, req *agentconfig.Request) {
	if len(key) > requestMemoKeyMax {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seed = maphash.MakeSeed()
		c.seen = make(map[uint64]struct{})
	}
	h := maphash.String(c.seed, key)
	if _, ok := c.seen[h]; !ok {
		if len(c.seen) >= seenMax {
			clear(c.seen)
		}
		c.seen[h] = struct{}{}
		return
	}
	delete(c.seen, h)
	if c.requests == nil || len(c.requests) >= requestMemoMax {
		c.requests = make(map[string]*agentconfig.Request, requestMemoMax)
	}
	c.requests[key] = req
}

// len is the number of memoised requests.
func (c *requestMemo) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.requests)
}

// request parses the annotations, or returns the request parsed for the same ones before.
func (m *Mutator) request(ann map[string]string) (*agentconfig.Request, error) {
	key := annotationKey(ann)
	if req, ok := m.memo.get(key); ok {
		return req, nil
	}
	req, err := agentconfig.FromAnnotations(ann, m.Defaults)
	if err != nil || req == nil {
		return req, err
	}
	if b, err := req.Agent.Marshal(); err == nil {
		req.AgentJSON = b
	}
	m.memo.put(key, req)
	return req, nil
}

// annotationKey is the pod's annotations under our prefix, sorted, as one string.
func annotationKey(ann map[string]string) string {
	keys := make([]string, 0, 8)
	n := 0
	for k, v := range ann {
		if strings.HasPrefix(k, agentconfig.Prefix) {
			keys = append(keys, k)
			n += len(k) + len(v) + 2
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	b.Grow(n)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(ann[k])
		b.WriteByte(0)
	}
	return b.String()
}
