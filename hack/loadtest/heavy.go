package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vault-injector/vault-injector/internal/memlimit"
	"github.com/vault-injector/vault-injector/internal/procstat"
	"github.com/vault-injector/vault-injector/webhook/webhooktest"
)

// chartMemoryLimit is the Helm chart's memory limit for the webhook (deploy/helm values):
// heavy mode runs the webhook with the Go memory limit it would set itself in that container.
const chartMemoryLimit = 128 << 20

// heavyBodies are the ~3 MiB reviews (the API server's own request limit) of heavy mode.
var heavyBodies = map[string]func() []byte{
	// template: one inline template of 3 MiB, the case (denied: over 256 KiB of annotations).
	"template": func() []byte {
		return review(`{"metadata":{"name":"big","annotations":{"vault-injector.io/role":"app","vault-injector.io/template-big":"` +
			strings.Repeat("a", 3<<20) + `"}},"spec":{"containers":[{"name":"app"}]}}`)
	},
	// env: small annotations, 3 MiB of container env that the agent container gets a copy of
	// (injected: the heaviest answer a pod can get).
	"env": func() []byte {
		var env []string
		for i := range 192 {
			env = append(env, `{"name":"V`+strconv.Itoa(i)+`","value":"`+strings.Repeat("x", 16<<10)+`"}`)
		}
		return review(`{"metadata":{"name":"big","annotations":{"vault-injector.io/role":"app","vault-injector.io/secret-db":"database/creds/app"}},` +
			`"spec":{"containers":[{"name":"app","env":[` + strings.Join(env, ",") + `]}]}}`)
	},
	// oversize: 5 MiB, over the webhook's 4 MiB body cap (413).
	"oversize": func() []byte {
		return review(`{"metadata":{"name":"big","annotations":{"vault-injector.io/role":"app","vault-injector.io/template-big":"` +
			strings.Repeat("a", 5<<20) + `"}},"spec":{"containers":[{"name":"app"}]}}`)
	},
}

func review(pod string) []byte { return webhooktest.ReviewBody("shop", []byte(pod)) }

// runHeavy loads a fresh vault-injector webhook per body kind and client count with huge
// reviews for dur and reports its peak RSS and how the requests were answered.
func runHeavy(bin string, kinds []string, clients []int, dur time.Duration) error {
	wd, err := newWorkDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(wd.dir)
	goLimit := memlimit.Of(chartMemoryLimit)
	fmt.Printf("heavy load: vault-injector webhook with GOMEMLIMIT=%d (what it sets itself under the chart's %d MiB limit), %s per run, HTTPS on loopback; clients do not wait on Retry-After\n\n",
		goLimit, chartMemoryLimit>>20, dur)
	fmt.Printf("%-9s %7s %9s %9s %8s %8s %8s %8s %7s\n", "body", "clients", "size", "peak RSS", "allowed", "denied", "429", "413", "other")
	for _, kind := range kinds {
		mk, ok := heavyBodies[kind]
		if !ok {
			return fmt.Errorf("unknown body kind %q: expected template, env or oversize", kind)
		}
		body := mk()
		for _, n := range clients {
			s, err := startServer(bin, []string{"webhook", "--log-level=error", "--env-style=file"}, []string{"GOMEMLIMIT=" + strconv.FormatInt(goLimit, 10)}, wd, n, 60*time.Second)
			if err != nil {
				return err
			}
			c := hammer(s.client, s.url, body, n, dur)
			_, hwm := procstat.Memory(s.pid)
			s.stop()
			fmt.Printf("%-9s %7d %6.1f MiB %5.1f MiB %8d %8d %8d %8d %7d\n", kind, n, float64(len(body))/(1<<20), float64(hwm)/1024,
				c.allowed, c.denied, c.status[http.StatusTooManyRequests], c.status[http.StatusRequestEntityTooLarge], c.other)
		}
	}
	return nil
}

// counts tallies the answers of heavy mode.
type counts struct {
	allowed, denied, other int
	status                 map[int]int
}

// hammer sends body from n clients for d, as fast as answers come.
func hammer(client *http.Client, url string, body []byte, n int, d time.Duration) counts {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	total := counts{status: map[int]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				code, b, err := send(ctx, client, url, body)
				mu.Lock()
				switch {
				case err != nil:
					if ctx.Err() == nil {
						total.other++
					}
				case code == http.StatusOK && bytes.Contains(b, []byte(`"allowed":true`)):
					total.allowed++
				case code == http.StatusOK && bytes.Contains(b, []byte(`"allowed":false`)):
					total.denied++
				case code == http.StatusTooManyRequests || code == http.StatusRequestEntityTooLarge:
					total.status[code]++
				default:
					total.other++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return total
}

func send(ctx context.Context, c *http.Client, url string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
