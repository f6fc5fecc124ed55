// Command vault-injector is the CLI: the admission webhook, the offline injector and migrator,
// policy check, doctor, and the agent's faces. Built with the tag webhookonly it is
// vault-injector-webhook, the webhook alone, which the chart's Deployment runs: none of the
// other faces' libraries (Vault's API, templates, port-forwarding) are paged in while it serves.
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

	"github.com/vault-injector/vault-injector/internal/cliflags"
	"github.com/vault-injector/vault-injector/internal/memlimit"
	"github.com/vault-injector/vault-injector/internal/pagetrim"
	"github.com/vault-injector/vault-injector/webhook"
)

// version is set at build time (-X main.version=...).
var version = "0.1.0"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one of the binary's faces beyond the webhook; it returns the exit code.
type command func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, version)
		return 2
	}
	switch args[0] {
	case "webhook":
		return exitCode("webhook", runWebhook(ctx, args[1:], stderr), stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprintf(stdout, usage, version)
		return 0
	}
	// commands holds the CLI's other faces; the webhook-only build (tag webhookonly) has none.
	if c, ok := commands[args[0]]; ok {
		return c(ctx, args[1:], stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n"+usage, args[0], version)
	return 2
}

// exitCode prints a command's error and maps it to the exit code: 0 for none or --help.
func exitCode(name string, err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "vault-injector %s: %v\n", name, err)
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

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("--log-level=%q: expected debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}
