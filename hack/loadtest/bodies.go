package main

import (
	"bytes"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/vault-injector/vault-injector/webhook/webhooktest"
)

// Pod kinds of the comparison. "same" sends one review over and over, as a Deployment's
// replicas are alike; "distinct" changes one secret path per request (a counter), as many
// Deployments or a rollout of changed pods would, so nothing memoised by annotations helps.
const (
	podsSame     = "same"
	podsDistinct = "distinct"
)

// varyMarker is the part of the typical pod's secret path that distinct bodies extend.
const varyMarker = `"secret/data/api/config"`

// bodies hands out the review to send next; safe for concurrent use.
type bodies struct {
	same       []byte
	head, tail []byte // distinct: the review split around the varied path
	n          atomic.Uint64
	distinct   bool
}

func newBodies(kind string) (*bodies, error) {
	body := webhooktest.ReviewBody("shop", []byte(webhooktest.TypicalPod))
	switch kind {
	case podsSame:
		return &bodies{same: body}, nil
	case podsDistinct:
		// The marker's first occurrence is the secret-config annotation; the template that
		// reads the same path stays as it is (the annotations differ all the same).
		i := bytes.Index(body, []byte(varyMarker))
		if i < 0 {
			return nil, fmt.Errorf("typical pod has no %s to vary", varyMarker)
		}
		end := i + len(varyMarker) - 1 // before the closing quote
		return &bodies{head: body[:end], tail: body[end:], distinct: true}, nil
	}
	return nil, fmt.Errorf("pods %q: expected %s or %s", kind, podsSame, podsDistinct)
}

// next returns the review for one request: a fresh slice for distinct bodies (one small
// allocation on the client, the same for both servers).
func (b *bodies) next() []byte {
	if !b.distinct {
		return b.same
	}
	n := b.n.Add(1)
	out := make([]byte, 0, len(b.head)+len(b.tail)+21)
	out = append(out, b.head...)
	out = append(out, '-')
	out = strconv.AppendUint(out, n, 10)
	return append(out, b.tail...)
}
