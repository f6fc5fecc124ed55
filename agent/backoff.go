package agent

import (
	"math/rand/v2"
	"time"
)

// backoff is capped exponential backoff with full jitter.
type backoff struct{ n int }

func newBackoff() *backoff { return &backoff{} }
func (b *backoff) reset()  { b.n = 0 }
func (b *backoff) next() time.Duration {
	base := 250 * time.Millisecond << min(b.n, 7) // caps at 32 s
	b.n++
	return base/2 + time.Duration(rand.Int64N(int64(base/2)+1))
}

// jitter spreads renewals of many pods: 90–100 % of d.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - time.Duration(rand.Int64N(int64(d/10)+1))
}
