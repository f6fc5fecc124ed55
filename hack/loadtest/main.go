// Command loadtest is `make bench`'s second half: it starts vault-injector's webhook and a
// do-nothing Go webhook (./baseline) as separate processes on loopback, loads each /mutate over
// HTTPS at each concurrency with the same annotated pod and with a different pod per request
// (compare.go, bodies.go), and prints requests/s, p50/p99 latency and peak RSS side by side.
// Machines are noisy: read the ratios.
//
// With -heavy it instead loads vault-injector alone with ~3 MiB reviews (heavy.go) and
// reports its peak RSS against the chart's memory limit.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vault-injector/vault-injector/webhook/webhooktest"
)

func main() {
	bin := flag.String("binary", "bin/vault-injector-webhook", "the webhook binary (make build: what the Deployment runs)")
	concs := flag.String("concurrency", "16,64", "requests in flight: a comma list, one block each")
	pods := flag.String("pods", podsSame+","+podsDistinct, "pod kinds, one block each: same (one review over and over) and distinct (a counter in one secret path)")
	dur := flag.Duration("duration", 10*time.Second, "load per server per block, split over the rounds")
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
		var cs []int
		if cs, err = parseCounts(*concs); err == nil {
			err = runCompare(compareConfig{bin: *bin, concs: cs, pods: strings.Split(*pods, ","), rounds: *rounds, dur: *dur, warm: *warm})
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
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
	ns, err := parseCounts(clients)
	if err != nil {
		return fmt.Errorf("-clients: %w", err)
	}
	return runHeavy(bin, strings.Split(kinds, ","), ns, dur)
}

// parseCounts parses a comma list of positive counts.
func parseCounts(list string) ([]int, error) {
	var ns []int
	for _, c := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: expected a comma list of positive counts", list)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// waitUp waits (bounded) for the server to answer.
func waitUp(c *http.Client, url string, body []byte) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := post(c, url, body, nil)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// post sends one review and checks the answer allows it. buf, when given, is reused for the
// answer: reading each answer into a fresh, growing slice would charge the client an
// allocation per answer byte that no API server pays, and the client shares the cores with
// the server it measures.
func post(c *http.Client, url string, body []byte, buf *bytes.Buffer) error {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	_, _ = buf.ReadFrom(resp.Body)
	b := buf.Bytes()
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
