// Command loadtest is `make bench`'s second half: it starts vault-injector's webhook and a
// do-nothing Go webhook (./baseline) as separate processes on loopback, loads each /mutate over
// HTTPS at the same fixed concurrency with the same annotated pod, and prints requests/s,
// p50/p99 latency and peak RSS side by side. Machines are noisy: read the ratios.
//
// With -heavy it instead loads vault-injector alone with ~3 MiB reviews (heavy.go) and
// reports its peak RSS against the chart's memory limit.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vault-injector/vault-injector/internal/procstat"
	"github.com/vault-injector/vault-injector/webhook/webhooktest"
)

func main() {
	bin := flag.String("binary", "bin/vault-injector", "vault-injector binary")
	conc := flag.Int("concurrency", 16, "requests in flight")
	dur := flag.Duration("duration", 10*time.Second, "load per server, split over the rounds")
	warm := flag.Duration("warmup", 2*time.Second, "unmeasured load before each server's first round")
	rounds := flag.Int("rounds", 5, "alternate the servers this many times, so drift on a shared machine hits both alike")
	heavy := flag.String("heavy", "", "instead: load vault-injector alone with ~3 MiB reviews of these kinds (comma list of template, env, oversize)")
	clients := flag.String("clients", "32,64", "with -heavy: client counts, one fresh webhook each")
	heavyDur := flag.Duration("heavy-duration", 30*time.Second, "with -heavy: load per run")
	flag.Parse()
	var err error
	if *heavy != "" {
		err = runHeavyFlags(*bin, *heavy, *clients, *heavyDur)
	} else {
		err = run(*bin, *conc, *rounds, *dur, *warm)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

type result struct {
	name     string
	rps      float64
	p50, p99 time.Duration
	errors   int
	hwKiB    int
	lat      []time.Duration
	elapsed  time.Duration
	roundRPS []float64
}

// workDir is a temporary directory with a self-signed serving certificate for loopback.
type workDir struct {
	dir, certFile, keyFile string
	pool                   *x509.CertPool
}

func newWorkDir() (*workDir, error) {
	dir, err := os.MkdirTemp("", "vault-injector-loadtest-")
	if err != nil {
		return nil, err
	}
	certFile, keyFile, pool, err := selfSigned(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	return &workDir{dir, certFile, keyFile, pool}, nil
}

func run(bin string, conc, rounds int, dur, warm time.Duration) error {
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
	body := webhooktest.ReviewBody("shop", []byte(webhooktest.TypicalPod))
	fmt.Printf("load: %d in flight, %s per server in %d alternating rounds after %s warm-up, %d-byte AdmissionReview, HTTPS on loopback\n",
		conc, dur, rounds, warm, len(body))

	type server struct {
		name, url string
		pid       int
		client    *http.Client
		res       result
	}
	var servers []*server
	for _, s := range []struct {
		name string
		args []string
	}{
		{"do-nothing webhook (decode review + corev1.Pod, allow)", []string{baseline}},
		{"vault-injector webhook (decide + build patch)", []string{bin, "webhook", "--log-level=warn"}},
	} {
		p, err := startServer(s.args[0], s.args[1:], nil, wd, conc, 5*time.Second)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		defer p.stop()
		sv := &server{name: s.name, url: p.url, pid: p.pid, client: p.client}
		sv.res.name = s.name
		phase(sv.client, sv.url, body, conc, warm)
		servers = append(servers, sv)
	}
	var ratios []float64
	for range rounds {
		for _, sv := range servers {
			start := time.Now()
			lat, errs := phase(sv.client, sv.url, body, conc, dur/time.Duration(rounds))
			el := time.Since(start)
			sv.res.lat = append(sv.res.lat, lat...)
			sv.res.errors += errs
			sv.res.elapsed += el
			sv.res.roundRPS = append(sv.res.roundRPS, float64(len(lat))/el.Seconds())
		}
		b, v := servers[0].res.roundRPS, servers[1].res.roundRPS
		ratios = append(ratios, v[len(v)-1]/b[len(b)-1])
	}
	var results []result
	for _, sv := range servers {
		r := sv.res
		slices.Sort(r.lat)
		r.rps = float64(len(r.lat)) / r.elapsed.Seconds()
		if len(r.lat) > 0 {
			r.p50, r.p99 = r.lat[len(r.lat)/2], r.lat[len(r.lat)*99/100]
		}
		_, r.hwKiB = procstat.Memory(sv.pid)
		results = append(results, r)
	}
	fmt.Printf("\n%-58s %10s %9s %9s %9s %7s\n", "server", "req/s", "p50", "p99", "peak RSS", "errors")
	for _, r := range results {
		fmt.Printf("%-58s %10.0f %9s %9s %6.1f MiB %7d\n", r.name, r.rps, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), float64(r.hwKiB)/1024, r.errors)
	}
	b, v := results[0], results[1]
	sorted := slices.Clone(ratios)
	slices.Sort(sorted)
	var each []string
	for _, x := range ratios {
		each = append(each, fmt.Sprintf("%.2f", x))
	}
	fmt.Printf("\nvault-injector / do-nothing: throughput %.2fx (median of rounds %.2fx; rounds %s), p99 %.2fx, peak RSS %.1f MiB\n",
		v.rps/b.rps, sorted[len(sorted)/2], strings.Join(each, " "), float64(v.p99)/float64(b.p99), float64(v.hwKiB)/1024)
	return nil
}

// process is a webhook started on loopback, with a client for it.
type process struct {
	url    string
	pid    int
	client *http.Client
	stop   func()
}

// startServer starts bin with args (plus the listen and TLS flags) and extra environment, and
// waits until it answers a typical review.
func startServer(bin string, args, env []string, wd *workDir, conns int, timeout time.Duration) (*process, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, append(slices.Clone(args), "--listen="+addr, "--tls-cert-file="+wd.certFile, "--tls-key-file="+wd.keyFile)...)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: wd.pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: conns}
	p := &process{url: "https://" + addr + "/mutate", pid: cmd.Process.Pid, client: &http.Client{Transport: tr, Timeout: timeout},
		stop: func() { tr.CloseIdleConnections(); _ = cmd.Process.Kill(); _ = cmd.Wait() }}
	if err := waitUp(p.client, p.url, webhooktest.ReviewBody("shop", []byte(webhooktest.TypicalPod))); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s did not come up: %w", bin, err)
	}
	return p, nil
}

// runHeavyFlags parses heavy mode's flags.
func runHeavyFlags(bin, kinds, clients string, dur time.Duration) error {
	var ns []int
	for _, c := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return fmt.Errorf("-clients=%q: expected a comma list of positive counts", clients)
		}
		ns = append(ns, n)
	}
	return runHeavy(bin, strings.Split(kinds, ","), ns, dur)
}

// waitUp waits (bounded) for the server to answer.
func waitUp(c *http.Client, url string, body []byte) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := post(c, url, body)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// phase loads url with conc requests in flight for d and returns the latencies of the
// successful requests and the number of failed ones.
func phase(client *http.Client, url string, body []byte, conc int, d time.Duration) ([]time.Duration, int) {
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
			e := 0
			for ctx.Err() == nil {
				t := time.Now()
				if err := post(client, url, body); err != nil {
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

func post(c *http.Client, url string, body []byte) error {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"allowed":true`)) {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func selfSigned(dir string) (certFile, keyFile string, pool *x509.CertPool, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "loadtest"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return "", "", nil, err
	}
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool, nil
}
