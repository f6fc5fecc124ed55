//go:build scale

package scale

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/test/testkit"
)

const (
	rolloutPods = 300
	// A batch of pods per second for 30 s: long enough for a leaf certificate living 8 s
	// (renewed every ~5.3 s) to be renewed at least twice during the rollout.
	batchSize     = 10
	batchInterval = time.Second
	clients       = 4
	// gate keeps the pods Pending: the scheduler sets gated pods aside without trying them, the
	// kubelet never sees them, and unbound pods are deleted at once. 300 pods could not run
	// on one node (110 at most), and starting them would measure the kubelet, not admission.
	gate = "vault-injector.io/scale-test"
)

// created is the outcome of one pod create, timed by the client.
type created struct {
	injected, want bool
	took           time.Duration
	err            error
}

// rolloutPod is an annotated pod that asks for a secret, in shard a or b, never scheduled.
func rolloutPod(i int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("app-%03d", i),
			Labels:      map[string]string{"app": "rollout", shardLabel: []string{"a", "b"}[i%2]},
			Annotations: map[string]string{"vault-injector.io/role": "app", "vault-injector.io/secret-config.json": "secret/app/config"},
		},
		Spec: corev1.PodSpec{
			SchedulingGates: []corev1.PodSchedulingGate{{Name: gate}},
			Containers: []corev1.Container{{Name: "app", Image: testkit.AppImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sleep", "3600"}}},
		},
	}
}

// rollout creates n pods in the injected namespace and, interleaved with them, the same n
// pods in a namespace the webhook does not select, so that both sets of timings see the same
// load on this shared machine. Clients work through one batch per interval.
func rollout(t *testing.T, injectedNS, plainNS string, n int) (withWebhook, without []created) {
	t.Helper()
	type job struct {
		i    int
		ns   string
		want bool
	}
	var mu sync.Mutex
	for start := 0; start < n; start += batchSize {
		began := time.Now()
		jobs := make(chan job)
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range jobs {
					t0 := time.Now()
					p, err := node.Client.CoreV1().Pods(j.ns).Create(ctx, rolloutPod(j.i), metav1.CreateOptions{})
					c := created{want: j.want, took: time.Since(t0), err: err}
					if err == nil {
						c.injected = injectedPod(p)
					}
					mu.Lock()
					if j.want {
						withWebhook = append(withWebhook, c)
					} else {
						without = append(without, c)
					}
					mu.Unlock()
				}
			}()
		}
		for i := start; i < min(start+batchSize, n); i++ {
			jobs <- job{i, injectedNS, true}
			jobs <- job{i, plainNS, false}
		}
		close(jobs)
		wg.Wait()
		time.Sleep(batchInterval - time.Since(began))
	}
	return withWebhook, without
}

// injectedPod: the webhook's status annotation and its agent container are both there.
func injectedPod(p *corev1.Pod) bool {
	if _, ok := p.Annotations[agentconfig.AnnotationStatus]; !ok {
		return false
	}
	return slices.ContainsFunc(append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...), func(c corev1.Container) bool {
		return strings.HasPrefix(c.Name, "vault-injector-")
	})
}

// tally counts failed creates and pods whose injection is not what their namespace asks
// for, keeping a few error messages.
func tally(cs []created) (failed, mismatched int, errs []string) {
	for _, c := range cs {
		switch {
		case c.err != nil:
			failed++
			if len(errs) < 5 {
				errs = append(errs, c.err.Error())
			}
		case c.injected != c.want:
			mismatched++
		}
	}
	return failed, mismatched, errs
}

// percentiles are the client-side p50 and p99 of the create times (nearest rank).
func percentiles(cs []created) (p50, p99 time.Duration) {
	if len(cs) == 0 {
		return 0, 0
	}
	ds := make([]time.Duration, 0, len(cs))
	for _, c := range cs {
		ds = append(ds, c.took)
	}
	slices.Sort(ds)
	rank := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))+0.999999)-1)] }
	return rank(0.50), rank(0.99)
}
