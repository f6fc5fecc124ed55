package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vault-injector/vault-injector/internal/procstat"
)

// compareConfig is one comparison run: the concurrencies and pod kinds to load, each a block of
// rounds that alternate the two servers.
type compareConfig struct {
	bin       string
	concs     []int
	pods      []string
	rounds    int
	dur, warm time.Duration
}

// server is one of the two webhooks being compared.
type server struct {
	name string
	proc *process
}

// blockResult is one server's figures for one (concurrency, pod kind) block.
type blockResult struct {
	rps, p50, p99 float64 // p50, p99 in ms
	errors        int
	peakKiB       int
	roundRPS      []float64
	// CPU time per successful request, in µs: the server process's, and this process's
	// (the client: TLS, writing the review, reading the answer). On a shared machine the two
	// compete for the same cores, so a bigger answer costs throughput on both sides.
	serverCPU, clientCPU float64
}

func runCompare(cfg compareConfig) error {
	wd, err := newWorkDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(wd.dir)
	baseline := filepath.Join(wd.dir, "baseline")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", baseline, "./hack/loadtest/baseline")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build baseline: %w", err)
	}
	maxConc := slices.Max(cfg.concs)
	var servers []*server
	for _, s := range []struct {
		name string
		args []string
	}{
		{"do-nothing", []string{baseline}},
		// No node to watch here: the env style is fixed (the bench pods have no env variables).
		{"vault-injector", []string{cfg.bin, "webhook", "--log-level=warn", "--env-style=file"}},
	} {
		p, err := startServer(s.args[0], s.args[1:], nil, wd, maxConc, 5*time.Second)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		defer p.stop()
		servers = append(servers, &server{name: s.name, proc: p})
	}
	fmt.Printf("load: %s per server per block in %d alternating rounds after %s warm-up; HTTPS on loopback; do-nothing = decode review + corev1.Pod with encoding/json, allow\n",
		cfg.dur, cfg.rounds, cfg.warm)
	fmt.Printf("\n%-9s %4s %-15s %9s %8s %8s %9s %6s %17s\n", "pods", "c", "server", "req/s", "p50 ms", "p99 ms", "peak RSS", "errors", "CPU µs/req srv+cli")
	var summary []string
	for _, conc := range cfg.concs {
		for _, kind := range cfg.pods {
			src, err := newBodies(kind)
			if err != nil {
				return err
			}
			res := block(servers, src, conc, cfg)
			for i, sv := range servers {
				r := res[i]
				fmt.Printf("%-9s %4d %-15s %9.0f %8.2f %8.2f %5.1f MiB %6d %8.0f+%-8.0f\n", kind, conc, sv.name, r.rps, r.p50, r.p99, float64(r.peakKiB)/1024, r.errors, r.serverCPU, r.clientCPU)
			}
			b, v := res[0], res[1]
			var each []string
			for i := range b.roundRPS {
				each = append(each, fmt.Sprintf("%.2f", v.roundRPS[i]/b.roundRPS[i]))
			}
			summary = append(summary, fmt.Sprintf("%-9s c=%-3d throughput %.2fx (rounds %s), p99 %.2fx, peak RSS %.1f vs %.1f MiB",
				kind, conc, v.rps/b.rps, strings.Join(each, " "), v.p99/b.p99, float64(v.peakKiB)/1024, float64(b.peakKiB)/1024))
		}
	}
	fmt.Println("\nvault-injector / do-nothing:")
	for _, s := range summary {
		fmt.Println("  " + s)
	}
	return nil
}

// block loads both servers with src at conc, alternating them in rounds, and returns their
// figures in the order of servers. Peak RSS is the process's peak during this block only
// (VmHWM reset before the warm-up), so a later block does not inherit an earlier one's.
func block(servers []*server, src *bodies, conc int, cfg compareConfig) []blockResult {
	lats := make([][]time.Duration, len(servers))
	elapsed := make([]time.Duration, len(servers))
	srvCPU := make([]time.Duration, len(servers))
	cliCPU := make([]time.Duration, len(servers))
	out := make([]blockResult, len(servers))
	for _, sv := range servers {
		procstat.ResetPeak(sv.proc.pid)
		phase(sv.proc.client, sv.proc.url, src, conc, cfg.warm)
	}
	for range cfg.rounds {
		for i, sv := range servers {
			start, s0, c0 := time.Now(), procstat.CPUTime(sv.proc.pid), procstat.CPUTime(os.Getpid())
			lat, errs := phase(sv.proc.client, sv.proc.url, src, conc, cfg.dur/time.Duration(cfg.rounds))
			el := time.Since(start)
			srvCPU[i] += procstat.CPUTime(sv.proc.pid) - s0
			cliCPU[i] += procstat.CPUTime(os.Getpid()) - c0
			lats[i] = append(lats[i], lat...)
			elapsed[i] += el
			out[i].errors += errs
			out[i].roundRPS = append(out[i].roundRPS, float64(len(lat))/el.Seconds())
		}
	}
	for i, sv := range servers {
		l := lats[i]
		slices.Sort(l)
		out[i].rps = float64(len(l)) / elapsed[i].Seconds()
		if len(l) > 0 {
			out[i].p50, out[i].p99 = ms(l[len(l)/2]), ms(l[len(l)*99/100])
			out[i].serverCPU = float64(srvCPU[i].Microseconds()) / float64(len(l))
			out[i].clientCPU = float64(cliCPU[i].Microseconds()) / float64(len(l))
		}
		_, out[i].peakKiB = procstat.Memory(sv.proc.pid)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// phase loads url with conc requests in flight for d and returns the latencies of the
// successful requests and the number of failed ones.
func phase(client *http.Client, url string, src *bodies, conc int, d time.Duration) ([]time.Duration, int) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var all []time.Duration
	errs := 0
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var buf bytes.Buffer
			e := 0
			for ctx.Err() == nil {
				body := src.next()
				t := time.Now()
				if err := post(client, url, body, &buf); err != nil {
					e++
					continue
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += e
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, errs
}
