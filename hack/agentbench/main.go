// Command agentbench is part of `make bench`: it measures what a sidecar in every pod costs.
// It starts a real Vault (dev mode, from the tools cache), seeds KV secrets, runs the built
// `vault-injector-agent agent` binary against it as a pod would, and reports the time from
// process start to the ready marker (all files rendered) and the agent's RSS after it has idled
// (re-reading its secrets every second), over several runs. It does so for two logins, taking
// turns: kubernetes auth (a TokenReview callback from Vault to a reviewer this process serves,
// as Vault calls the API server) and jwt auth with a key generated here (Vault checks the
// signature itself), both built into the test Vault as into a released one. Wall time on a
// shared 2-core machine depends on its load (agent, Vault and this process's token reviewer
// all need a core), so it also reports the CPU time the agent and Vault spent, and the floor
// of exec plus Go runtime start-up. With -vs it measures a second build of the agent too, the
// two taking turns against the same Vault, and prints the difference of their medians: the
// way to judge a change to the agent on a machine whose speed drifts between runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/internal/procstat"
	"github.com/vault-injector/vault-injector/test/vaulttest"
)

func main() {
	bin := flag.String("binary", "bin/vault-injector-agent", "the agent's binary (vault-injector works too: it has the agent face)")
	runs := flag.Int("runs", 5, "agent starts to measure")
	idle := flag.Duration("idle", 5*time.Second, "how long the agent idles before RSS is read")
	logLevel := flag.String("log-level", "warn", "the agent's log level (info shows its own start-up timeline)")
	vs := flag.String("vs", "", "a second agent binary (B) to measure against -binary (A), taking turns; prints A minus B")
	kvPaths := flag.String("kv-paths", "data", "how the secrets' paths are written: data (secret/data/db, as in the README's examples and HashiCorp's annotations: read while the KV mount is looked up) or short (secret/db: rewritten to secret/data/db, so read after the lookup)")
	methods := flag.String("methods", "kubernetes,jwt", "the login methods to measure, taking turns: kubernetes (with a TokenReview callback from Vault to this process) and jwt (Vault checks the signature)")
	flag.Parse()
	o := options{bins: []string{*bin}, runs: *runs, idle: *idle, logLevel: *logLevel, methods: strings.Split(*methods, ",")}
	if *vs != "" {
		o.bins = append(o.bins, *vs)
	}
	var ok bool
	if o.kvPrefix, ok = map[string]string{"data": "secret/data/", "short": "secret/"}[*kvPaths]; !ok {
		fmt.Fprintf(os.Stderr, "agentbench: -kv-paths %q is not data or short\n", *kvPaths)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "agentbench:", err)
		os.Exit(1)
	}
}

// options are the bench's flags.
type options struct {
	bins     []string // the agent binary, and the one of -vs
	kvPrefix string   // of the secrets' paths (-kv-paths)
	runs     int
	idle     time.Duration
	logLevel string
	methods  []string
}

func run(o options) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "agentbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	filesDir, filesFS, err := memoryDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(filesDir)
	v, err := vaulttest.Start(ctx, dir)
	if err != nil {
		return err
	}
	defer v.Stop()
	logins, closeLogins, err := setUpLogins(ctx, v, dir, o.methods)
	defer closeLogins()
	if err != nil {
		return err
	}
	root, err := v.Client()
	if err != nil {
		return err
	}
	var secrets []agentconfig.Secret
	for i, name := range []string{"db", "api", "tls"} {
		if _, err := root.Logical().Write("secret/data/"+name, map[string]any{"data": map[string]any{"user": name, "password": strings.Repeat("x", 32), "n": i}}); err != nil {
			return err
		}
		secrets = append(secrets, agentconfig.Secret{Name: name, Identity: agentconfig.DefaultIdentity, Path: o.kvPrefix + name, File: name + ".json", Perms: 0o640})
	}
	secrets = append(secrets, agentconfig.Secret{Name: "app.env", Identity: agentconfig.DefaultIdentity, File: "app.env", Perms: 0o640,
		Template: strings.ReplaceAll(`{{ with secret "PREFIXdb" }}DB_USER={{ .Data.data.user }}
DB_PASSWORD={{ .Data.data.password }}{{ end }}
{{ with secret "PREFIXapi" }}API_KEY={{ .Data.data.password }}{{ end }}
`, "PREFIX", o.kvPrefix)})

	// Each login once per binary: with -vs, A and B take turns like the methods do.
	var subjects []*login
	for _, l := range logins {
		for _, bin := range o.bins {
			s := *l
			s.bin = bin
			if len(o.bins) > 1 {
				s.what += ", binary " + bin
			}
			subjects = append(subjects, &s)
		}
	}
	floors := map[string][]time.Duration{}
	for _, bin := range o.bins {
		if floors[bin], err = execFloor(bin, o.runs); err != nil {
			return err
		}
	}
	// Round -1 warms up and is not counted: the first login of a service account makes Vault
	// create its identity entity, which no later pod of it pays, and the first start of a
	// binary finds it outside the page cache. (Two runs of one binary against itself with
	// -vs and 3 rounds differed by 5-12 ms without it.)
	for i := -1; i < o.runs; i++ {
		if i == 0 {
			for _, l := range subjects {
				l.forget()
			}
		}
		// Everything measured takes turns, in alternating order, so a change in the
		// machine's load hits all alike.
		order := slices.Clone(subjects)
		if i%2 != 0 {
			slices.Reverse(order)
		}
		for j, l := range order {
			if err := l.start(v, secrets, filepath.Join(filesDir, fmt.Sprint(l.method, "-run", i, "-", j)), o.idle, o.logLevel); err != nil {
				return fmt.Errorf("%s login, %s: %w", l.method, l.bin, err)
			}
		}
	}
	o.report(filesFS, len(logins), subjects, floors)
	return nil
}

// setUpLogins prepares Vault for each login method and mints the token the agent logs in with.
// The returned close stops what the logins need beside Vault (the TokenReview stand-in).
func setUpLogins(ctx context.Context, v *vaulttest.Server, dir string, methods []string) ([]*login, func(), error) {
	const policy = `path "secret/data/*" { capabilities = ["read"] }`
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	var logins []*login
	for _, m := range methods {
		switch m {
		case agentconfig.MethodKubernetes:
			// Vault asks the reviewer this process serves, as it would ask the API server.
			rev := vaulttest.StartTokenReviewer()
			closers = append(closers, rev.Close)
			if err := v.EnableKubernetesAuth(ctx, rev, "kubernetes"); err != nil {
				return nil, closeAll, err
			}
			if err := v.Role(ctx, "kubernetes", "app", "demo", "app", policy, nil); err != nil {
				return nil, closeAll, err
			}
			tokenFile, err := rev.MintFile(dir, "demo", "app")
			if err != nil {
				return nil, closeAll, err
			}
			logins = append(logins, &login{method: m, authPath: agentconfig.DefaultKubernetesAuthPath, tokenFile: tokenFile,
				what: "kubernetes login against a local Vault"})
		case agentconfig.MethodJWT:
			// Vault checks the token's signature with the key given here: no callback.
			signer, err := vaulttest.NewJWTSigner("https://kubernetes.default.svc")
			if err != nil {
				return nil, closeAll, err
			}
			if err := v.EnableJWTAuth(ctx, "jwt", signer.PublicKeyPEM, signer.Issuer); err != nil {
				return nil, closeAll, err
			}
			if err := v.JWTRole(ctx, "jwt", "app", "vault", "demo", "app", policy); err != nil {
				return nil, closeAll, err
			}
			// Minted for 10 minutes: longer than a bench run.
			tokenFile, err := signer.MintFile(dir, "jwt-token", "vault", "demo", "app", "app-0")
			if err != nil {
				return nil, closeAll, err
			}
			logins = append(logins, &login{method: m, authPath: agentconfig.DefaultJWTAuthPath, tokenFile: tokenFile,
				what: "jwt login (no TokenReview callback) against the same Vault"})
		default:
			return nil, closeAll, fmt.Errorf("-methods: %q is not %q or %q", m, agentconfig.MethodKubernetes, agentconfig.MethodJWT)
		}
	}
	return logins, closeAll, nil
}

// report prints each measured subject, then the differences of their medians: A minus B with
// -vs, and kubernetes minus jwt login when both were measured.
func (o options) report(filesFS string, methods int, subjects []*login, floors map[string][]time.Duration) {
	load := procstat.LoadAverage()
	for _, l := range subjects {
		slices.Sort(l.rss)
		slices.Sort(l.peak)
		fmt.Printf("\nagent: %d runs, 4 files from 3 KV v2 secrets (%s...) on %s, %s; load average at the end %s\n", o.runs, o.kvPrefix, filesFS, l.what, load)
		fmt.Printf("  process start -> all files rendered: %s\n", spread(l.firstRender))
		fmt.Printf("  of which exec + Go runtime and package init (start -> exit of `vault-injector version`): %s\n", spread(floors[l.bin]))
		fmt.Printf("  CPU time to ready (on a core, whatever the machine's load): agent %s; Vault serving it %s\n", spread(l.agentCPU), spread(l.vaultCPU))
		fmt.Printf("  RSS after %s idle: median %.1f MiB; peak RSS (VmHWM) max %.1f MiB\n", o.idle, float64(l.rss[len(l.rss)/2])/1024, float64(l.peak[len(l.peak)-1])/1024)
	}
	fmt.Println()
	if len(o.bins) == 2 {
		for i := 0; i < len(subjects); i += 2 {
			a, b := subjects[i], subjects[i+1]
			fmt.Printf("%s login, A minus B, difference of the medians above (runs interleaved): %s\n", a.method, diffs(a, b))
		}
		fmt.Printf("  (A %s, B %s)\n", o.bins[0], o.bins[1])
	}
	if methods == 2 {
		k, j := subjects[0], subjects[len(o.bins)]
		fmt.Printf("%s minus %s login (binary %s), difference of the medians above (runs interleaved): %s\n", k.method, j.method, k.bin, diffs(k, j))
	}
}

// diffs is what differs between the medians of a and b.
func diffs(a, b *login) string {
	return fmt.Sprintf("start -> all files rendered %s; agent CPU %s; Vault CPU %s",
		medianDiff(a.firstRender, b.firstRender), medianDiff(a.agentCPU, b.agentCPU), medianDiff(a.vaultCPU, b.vaultCPU))
}

// login is one auth method the agent is measured with, the binary measured, and what was
// measured.
type login struct {
	method, authPath, tokenFile, what string
	bin                               string

	firstRender, agentCPU, vaultCPU []time.Duration
	rss, peak                       []int
}

// forget drops what was measured so far.
func (l *login) forget() {
	l.firstRender, l.agentCPU, l.vaultCPU, l.rss, l.peak = nil, nil, nil, nil, nil
}

// start runs the agent once in runDir with this login: to ready, then idle, then stopped.
func (l *login) start(v *vaulttest.Server, secrets []agentconfig.Secret, runDir string, idle time.Duration, logLevel string) error {
	cfg := agentconfig.Config{
		Version: agentconfig.Version, Mode: agentconfig.ModeSidecar,
		Identities: []agentconfig.Identity{{Name: agentconfig.DefaultIdentity, Method: l.method, AuthPath: l.authPath, Role: "app", Address: v.Addr}},
		Secrets:    secrets, SecretsDir: filepath.Join(runDir, "secrets"), HomeDir: filepath.Join(runDir, "home"),
		ServiceAccountTokenFile: l.tokenFile, RefreshInterval: agentconfig.Duration(time.Second),
	}
	for _, d := range []string{cfg.SecretsDir, cfg.HomeDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	b, _ := cfg.Marshal()
	cfgFile := filepath.Join(runDir, "config.json")
	if err := os.WriteFile(cfgFile, b, 0o644); err != nil {
		return err
	}
	watch, err := watchCreations(cfg.HomeDir)
	if err != nil {
		return err
	}
	defer watch.Close()
	cmd := exec.Command(l.bin, "agent", "--config", cfgFile, "--log-level", logLevel)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stderr = os.Stderr
	vault0 := procstat.CPUTime(v.PID())
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := waitCreated(watch, agentconfig.ReadyName, start.Add(20*time.Second)); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("agent not ready: %w", err)
	}
	l.firstRender = append(l.firstRender, time.Since(start))
	l.agentCPU = append(l.agentCPU, procstat.CPUTime(cmd.Process.Pid))
	l.vaultCPU = append(l.vaultCPU, procstat.CPUTime(v.PID())-vault0)
	time.Sleep(idle)
	cur, hw := procstat.Memory(cmd.Process.Pid)
	l.rss, l.peak = append(l.rss, cur), append(l.peak, hw)
	_ = cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("agent did not stop cleanly after idling (it re-reads its secrets every second): %w", err)
	}
	return nil
}

// execFloor is what starting the binary costs before the agent does anything: exec, the Go
// runtime and every linked package's initialisers, timed to the exit of `version`.
func execFloor(bin string, runs int) ([]time.Duration, error) {
	var out []time.Duration
	for range runs {
		start := time.Now()
		if err := exec.Command(bin, "version").Run(); err != nil {
			return nil, fmt.Errorf("%s version: %w", bin, err)
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// spread is "median M (min A, max B)" of ds.
func spread(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	return fmt.Sprintf("median %s (min %s, max %s)", r(s[len(s)/2]), r(s[0]), r(s[len(s)-1]))
}

// medianDiff is the median of a minus the median of b.
func medianDiff(a, b []time.Duration) time.Duration {
	return (median(a) - median(b)).Round(100 * time.Microsecond)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// tmpfsMagic is statfs's f_type of a tmpfs (linux/magic.h).
const tmpfsMagic = 0x01021994

// memoryDir is a directory for the agent's secrets and home: on tmpfs (/dev/shm) when the
// machine has one, as the pod's Memory emptyDirs are. On the disk's file system, creating each
// file can cost far more (ext4 scans for a free inode past recently deleted ones: ~2 ms of
// the agent's CPU per start measured on a busy test machine), which no pod pays. The second
// result says which it is, for the report.
func memoryDir() (string, string, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err == nil && st.Type == tmpfsMagic {
		d, err := os.MkdirTemp("/dev/shm", "agentbench-")
		return d, "tmpfs (/dev/shm, as a pod's Memory emptyDir)", err
	}
	d, err := os.MkdirTemp("", "agentbench-files-")
	return d, "the disk (no tmpfs at /dev/shm: slower file creation than a pod's Memory emptyDir)", err
}
