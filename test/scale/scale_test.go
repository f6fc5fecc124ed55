//go:build scale

package scale

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRolloutAtScale creates 300 injected pods through the API server (batches of 10 a second,
// 4 clients) while two webhook replicas installed from the Helm chart serve them, each for
// half the pods, and their self-managed certificate is renewed every ~5 s (leaf 8 s, CA 20 s,
// replicas re-reading the Secret every second). Every create must be admitted and injected,
// and the serving certificate must change at least twice on both replicas during the rollout.
// The same pods are created in a namespace the webhook does not select, interleaved, for the
// latency the webhook adds. Figures: the API server's own admission metrics (share of calls
// per histogram bucket), client-side p50/p99, and each replica's peak RSS and CPU.
func TestRolloutAtScale(t *testing.T) {
	r := installReplicas(t, "vi-scale",
		"--set", "certs.selfManaged.leafLifetime=8s", "--set", "certs.selfManaged.caLifetime=20s",
		"--set", "certs.selfManaged.syncInterval=1s")
	injectedNS := namespace(t, "vi-scale-pods", map[string]string{"vault-injector.io/inject": "enabled"})
	plainNS := namespace(t, "vi-scale-plain", nil)
	r.waitServing(t, injectedNS)

	webhooks := map[string]string{"name": r.list[0].webhook + "|" + r.list[1].webhook}
	before := scrapeAPIServer(t)
	procs := r.watchProcesses(t)
	certs := r.watchCerts()
	start := time.Now()
	withWebhook, without := rollout(t, injectedNS, plainNS, rolloutPods)
	took := time.Since(start)
	leaves, cas := certs.finish()
	used := procs.finish()
	after := scrapeAPIServer(t)

	failed, mismatched, errs := tally(withWebhook)
	failedPlain, _, errsPlain := tally(without)
	t.Logf("rollout: %d injected pods (and %d without the webhook) created in %s, %d failed admissions, %d pods not injected",
		len(withWebhook), len(without), took.Round(100*time.Millisecond), failed, mismatched)
	if failed > 0 || mismatched > 0 {
		t.Errorf("%d failed admissions, %d pods created without injection: %s", failed, mismatched, strings.Join(errs, " | "))
	}
	if failedPlain > 0 {
		t.Errorf("%d creates failed without the webhook: %s", failedPlain, strings.Join(errsPlain, " | "))
	}
	if len(withWebhook) != rolloutPods {
		t.Errorf("%d creates attempted, want %d", len(withWebhook), rolloutPods)
	}
	checkStored(t, injectedNS)

	// The certificate rotated during the rollout, on both replicas.
	t.Logf("certificates during the rollout: replica a served %d, replica b %d distinct serving certificates; caBundle held %d CAs",
		leaves["a"], leaves["b"], cas)
	for shard, n := range leaves {
		if n < 3 {
			t.Errorf("replica %s served %d serving certificates during the rollout: fewer than two rotations", shard, n)
		}
	}
	if cas < 2 {
		t.Errorf("caBundle held %d CAs during the rollout: the 20s CA was not rotated", cas)
	}

	// What the API server measured: every call answered 200, none rejected, each replica called
	// for the pods of its shard. A pod may be sent to its replica twice: the second call is a
	// reinvocation (reinvocationPolicy IfNeeded) after another admission plugin changed the
	// injected pod, and the webhook returns the pod as is.
	for _, rep := range r.list {
		name := map[string]string{"name": rep.webhook}
		calls := after.sum(requestMetric, name) - before.sum(requestMetric, name)
		ok := after.sum(requestMetric, map[string]string{"name": rep.webhook, "code": "200"}) - before.sum(requestMetric, map[string]string{"name": rep.webhook, "code": "200"})
		t.Logf("API server: %s called %.0f times, %.0f answered 200", rep.webhook, calls, ok)
		if calls < rolloutPods/2 || calls > rolloutPods || ok != calls {
			t.Errorf("%s: %.0f calls, %.0f answered 200; want one or two per pod of its shard (%d pods), all 200", rep.webhook, calls, ok, rolloutPods/2)
		}
	}
	if n := after.sum(rejectionMetric, webhooks) - before.sum(rejectionMetric, webhooks); n != 0 {
		t.Errorf("the API server counted %.0f webhook rejections", n)
	}
	h := histogramDelta(before, after, map[string]string{"name": webhooks["name"], "type": "admit", "operation": "CREATE"})
	t.Logf("API server admission duration (%s): %s", durationMetric, h)
	if h.count < rolloutPods || h.count > 2*rolloutPods {
		t.Errorf("the duration histogram counted %.0f calls, want one or two per pod (%d pods)", h.count, rolloutPods)
	}

	// The latency the webhook adds, as a client sees it.
	w50, w99 := percentiles(withWebhook)
	p50, p99 := percentiles(without)
	t.Logf("pod create, client side: with the webhook p50 %s p99 %s; without p50 %s p99 %s; added p50 %s p99 %s",
		ms(w50), ms(w99), ms(p50), ms(p99), ms(w50-p50), ms(w99-p99))

	for _, u := range used {
		t.Logf("webhook %s", u)
		if u.peakRSS == 0 || u.cpu <= 0 {
			t.Errorf("replica %s: no memory or CPU figures from /proc (pid %d)", u.replica, u.pid)
		}
	}
	if n := r.errorLogLines(t); n > 0 {
		t.Errorf("%d error lines in the webhook pods' logs", n)
	}
}

// checkStored lists what the API server stored: every pod injected, Pending, never bound.
func checkStored(t *testing.T, ns string) {
	t.Helper()
	pods, err := node.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=rollout"})
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i := range pods.Items {
		p := &pods.Items[i]
		if !injectedPod(p) || p.Status.Phase != corev1.PodPending || p.Spec.NodeName != "" {
			bad++
			if bad <= 3 {
				t.Errorf("stored pod %s: injected %v, phase %s, node %q", p.Name, injectedPod(p), p.Status.Phase, p.Spec.NodeName)
			}
		}
	}
	if len(pods.Items) != rolloutPods || bad > 0 {
		t.Errorf("%d pods stored, %d not injected and pending; want %d, all injected and pending", len(pods.Items), bad, rolloutPods)
	}
}

// waitServing waits (bounded) until the API server calls both replicas with the caBundle they
// published: a dry-run pod of each shard comes back injected. The configuration reaches the
// API server's admission chain asynchronously; the rollout starts after that.
func (r *replicas) waitServing(t *testing.T, ns string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		ok := 0
		for j := range 2 {
			p := rolloutPod(j)
			p.Name = "warm-up"
			var got *corev1.Pod
			got, err = node.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil && injectedPod(got) {
				ok++
			}
		}
		if ok == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API server does not call both replicas after 30s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func ms(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
