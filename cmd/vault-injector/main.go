// Command vault-injector is one binary with three faces: the admission webhook, the agent that
// runs inside injected pods, and the offline injector.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/vault-injector/vault-injector/agent"
	"github.com/vault-injector/vault-injector/envexec"
	"github.com/vault-injector/vault-injector/inject"
	"github.com/vault-injector/vault-injector/internal/cliflags"
	"github.com/vault-injector/vault-injector/internal/memlimit"
	"github.com/vault-injector/vault-injector/internal/pagetrim"
	"github.com/vault-injector/vault-injector/webhook"
)

// version is set at build time (-X main.version=...).
var version = "0.1.0"

const usage = `vault-injector %s: HashiCorp Vault secrets in Kubernetes pods, without touching images.

Usage:
  vault-injector webhook [flags]        serve the mutating admission webhook (HTTPS)
  vault-injector inject -f FILE|- [-n NAMESPACE] [flags]
                                        inject offline: YAML in, injected YAML out
  vault-injector migrate -f FILE|-      rewrite vault.hashicorp.com/ annotations to vault-injector.io/
  vault-injector policy check -f POLICY [FILE...]
                                        validate an admission policy and explain its decisions
  vault-injector agent [flags]          run inside injected pods (auth, render, renew)
  vault-injector exec -- cmd [args]     run inside app containers: cmd with the env file's variables
  vault-injector doctor [KIND/]NAME | -f FILE | --all [-n NAMESPACE] [flags]
                                        why a workload is or isn't injected, and whether its
                                        identities can log in and read their paths
  vault-injector version

Run "vault-injector <command> --help" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, version)
		return 2
	}
	var err error
	switch args[0] {
	case "webhook":
		err = runWebhook(ctx, args[1:], stderr)
	case "inject":
		err = runInject(args[1:], stdin, stdout, stderr)
	case "migrate":
		err = runMigrate(args[1:], stdin, stdout, stderr)
	case "policy":
		err = runPolicy(args[1:], stdin, stdout, stderr)
	case "agent":
		return agent.Main(ctx, args[1:], stdout, stderr)
	case "exec":
		return envexec.Main(args[1:], stdout, stderr)
	case "doctor":
		err = runDoctor(ctx, args[1:], stdin, stdout, stderr)
		if code, ok := doctorExitCode(err); ok {
			return code
		}
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprintf(stdout, usage, version)
		return 0
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n"+usage, args[0], version)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "vault-injector %s: %v\n", args[0], err)
		return 1
	}
}

func runWebhook(ctx context.Context, args []string, stderr io.Writer) error {
	fs := cliflags.New("webhook", "webhook [flags]")
	fs.SetOutput(stderr)
	var mf mutatorFlags
	mf.register(fs)
	var cf certFlags
	cf.register(fs)
	var pf policyFlags
	pf.register(fs)
	listen := fs.String("listen", ":8443", "address to serve HTTPS on")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	grace := fs.Duration("shutdown-grace", 10*time.Second, "how long in-flight requests may finish after SIGTERM")
	maxInFlight := fs.Int("max-requests-in-flight", webhook.DefaultMaxInFlight, "admission requests served at once; more are answered 429 with Retry-After: 1 (the API server retries)")
	maxInFlightBytes := fs.String("max-in-flight-bytes", "8Mi", "sum of the declared body sizes of the admission requests served at once (at least 4Mi); more are answered 429 with Retry-After: 1")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	limits, err := webhookLimits(*maxInFlight, *maxInFlightBytes)
	if err != nil {
		return err
	}
	setMemoryLimit(log)
	m, err := mf.mutator()
	if err != nil {
		return err
	}
	src, err := cf.source(ctx, log)
	if err != nil {
		return err
	}
	if err := watchEnvStyle(ctx, m, mf.envStyleAuto(), cf.kubeconfig, log); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := pf.start(ctx, m, cf.kubeconfig, reg, log); err != nil {
		return err
	}
	srv := &webhook.Server{
		Addr:           *listen,
		Handler:        &webhook.Handler{Mutator: m, Log: log, Metrics: webhook.NewMetrics(reg), Limits: limits},
		GetCertificate: src.GetCertificate,
		Registry:       reg,
		Log:            log,
		ShutdownGrace:  *grace,
	}
	log.Info("starting webhook", "version", version, "vault_address", m.Defaults.Address, "agent_image", m.Settings.AgentImage, "sidecar_style", string(m.Settings.Style))
	// Start-up touched ~6 MiB of the binary that serving never runs again (initialisers of
	// the Vault, Kubernetes and Prometheus libraries linked for the other faces): let it go.
	// Serving code faults back in from the page cache as it runs.
	if n, err := pagetrim.StartupPages(); err != nil {
		log.Debug("start-up pages not released", "error", err.Error())
	} else {
		log.Debug("released start-up pages", "bytes", n)
	}
	return srv.ListenAndServe(ctx)
}

// webhookLimits checks the in-flight flags.
func webhookLimits(maxInFlight int, maxBytes string) (webhook.Limits, error) {
	if maxInFlight < 1 {
		return webhook.Limits{}, fmt.Errorf("--max-requests-in-flight=%d: expected at least 1", maxInFlight)
	}
	q, err := resource.ParseQuantity(maxBytes)
	if err != nil || q.Value() < webhook.MaxBodyBytes {
		return webhook.Limits{}, fmt.Errorf("--max-in-flight-bytes=%q: expected a size of at least 4Mi (one review of the largest accepted size), like 8Mi", maxBytes)
	}
	return webhook.Limits{MaxInFlight: maxInFlight, MaxInFlightBytes: q.Value()}, nil
}

// setMemoryLimit gives the Go runtime 90 % of the container's memory limit, so that it
// collects harder near the limit instead of being OOM-killed (GOMEMLIMIT, if set, wins).
func setMemoryLimit(log *slog.Logger) {
	ml, err := memlimit.Apply(cgroupRoot)
	if err != nil {
		// Serving without a Go memory limit is how the webhook ran before: worth a warning,
		// not a refusal to start.
		log.Warn("no Go memory limit from the cgroup", "error", err.Error())
	}
	if ml.Source == "none" {
		log.Info("no memory limit: the container has none and GOMEMLIMIT is unset")
		return
	}
	log.Info("Go memory limit set", "source", ml.Source, "bytes", ml.Limit, "cgroup_bytes", ml.Cgroup)
}

// cgroupRoot is where the container's cgroup is mounted.
const cgroupRoot = "/sys/fs/cgroup"

func runInject(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := cliflags.New("inject", "inject -f FILE|- [-n NAMESPACE] [flags]")
	fs.SetOutput(stderr)
	var mf mutatorFlags
	mf.register(fs)
	var op offlinePolicy
	op.register(fs, "admission policy file to apply, as the webhook would with --policy-configmap (empty: none)")
	file := fs.String("f", "-", "YAML file to inject, - for stdin")
	ns := fs.String("n", "", "namespace the objects would be created in (default: their own, else \"default\")")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: give the file with -f", fs.Args())
	}
	m, err := mf.mutator()
	if err != nil {
		return err
	}
	offlineEnvStyle(m, mf.envStyleAuto())
	if _, err := op.apply(m); err != nil {
		return err
	}
	in, done, err := openInput(*file, stdin)
	if err != nil {
		return err
	}
	defer done()
	return inject.StreamWarn(in, stdout, stderr, m, *ns)
}

// runMigrate rewrites manifests written for HashiCorp's injector to our annotations. Objects
// it cannot map are written unchanged and listed on stderr, and the exit code is 1.
func runMigrate(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := cliflags.New("migrate", "migrate -f FILE|-")
	fs.SetOutput(stderr)
	file := fs.String("f", "-", "YAML file to rewrite, - for stdin")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: give the file with -f", fs.Args())
	}
	in, done, err := openInput(*file, stdin)
	if err != nil {
		return err
	}
	defer done()
	err = inject.Migrate(in, stdout)
	var um *inject.UnmappedError
	if errors.As(err, &um) {
		return fmt.Errorf("written unchanged, since their annotations have no equivalent here:\n%w", err)
	}
	return err
}

// openInput opens the -f argument of inject and migrate: a file, or stdin for "-".
func openInput(file string, stdin io.Reader) (io.Reader, func(), error) {
	if file == "-" {
		return stdin, func() {}, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("--log-level=%q: expected debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}
