//go:build !webhookonly

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/doctor"
	"github.com/vault-injector/vault-injector/internal/cliflags"
)

// errDoctorFindings makes run exit with the report's code without printing more.
type errDoctorFindings struct{ code int }

func (e *errDoctorFindings) Error() string { return fmt.Sprintf("exit %d", e.code) }

// runDoctor explains why a workload is or is not injected and whether its identities can log
// in to Vault and read their paths. Flags may come after the object (kubectl style).
func runDoctor(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := cliflags.New("doctor", "doctor [KIND/]NAME | -f FILE | --all [-n NAMESPACE] [flags]")
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	kubeContext := fs.String("context", "", "kubeconfig context (default: the current one)")
	ns := fs.String("n", "", "namespace (default: the context's, else \"default\")")
	all := fs.Bool("all", false, "check every pod of the namespace that carries an injector annotation")
	file := fs.String("f", "", "YAML file of pods or workloads to check as they would be created, - for stdin")
	output := fs.String("o", "text", "text (a checklist) or json")
	webhookConfig := fs.String("webhook-config", "", "MutatingWebhookConfiguration name (default: the one holding webhook "+doctor.WebhookName+")")
	vaultAddr := fs.String("vault-addr", "", "Vault address reachable from here, for the Vault-side checks (default $VAULT_ADDR; empty: skipped)")
	vaultToken := fs.String("vault-token", "", "optional operator token that may read the auth roles, to name login failures exactly (default $VAULT_TOKEN); never printed")
	vaultCA := fs.String("vault-ca", "", "CA certificate file of Vault's TLS certificate (default $VAULT_CACERT; empty: system roots)")
	audience := fs.String("token-audience", "vault", "token audience when the injected pod does not show one (the webhook's --token-audience)")
	authPath := fs.String("auth-path", agentconfig.DefaultKubernetesAuthPath, "auth mount when the pod is not injected and names none (the webhook's --auth-path)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if err := cliflags.Parse(fs, nil); err != nil {
		return err
	}
	if *output != "text" && *output != "json" {
		return fmt.Errorf("-o %q: expected text or json", *output)
	}
	given := len(positional)
	if *file != "" {
		given++
	}
	if *all {
		given++
	}
	if given != 1 {
		return fmt.Errorf("give exactly one target: an object ([KIND/]NAME), -f FILE, or --all (got %d)", given)
	}
	var t doctor.Target
	switch {
	case len(positional) == 1:
		kind, name, err := doctor.ParseObject(positional[0])
		if err != nil {
			return err
		}
		t.Kind, t.Name = kind, name
	case *file != "":
		in, done, err := openInput(*file, stdin)
		if err != nil {
			return err
		}
		defer done()
		t.File = in
	default:
		t.All = true
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: *kubeContext})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	t.Namespace = *ns
	if t.Namespace == "" {
		if t.Namespace, _, err = cc.Namespace(); err != nil || t.Namespace == "" {
			t.Namespace = "default"
		}
	}
	// client-go reports a port-forward's closed streams through klog; doctor's checklist is
	// the only output.
	klog.SetLogger(logr.Discard())
	client, err := doctor.NewKube(cfg)
	if err != nil {
		return err
	}
	opts := doctor.Options{
		Client:        client,
		Dialer:        doctor.PortForwardDialer{Config: cfg},
		WebhookConfig: *webhookConfig,
		Vault:         doctor.VaultOptions{Addr: orEnv(*vaultAddr, "VAULT_ADDR"), Token: orEnv(*vaultToken, "VAULT_TOKEN"), CACert: orEnv(*vaultCA, "VAULT_CACERT")},
		TokenAudience: *audience,
		AuthPath:      *authPath,
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	report, err := doctor.Run(ctx, opts, t)
	if err != nil {
		return err
	}
	if *output == "json" {
		err = report.WriteJSON(stdout)
	} else {
		err = report.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if code := report.ExitCode(); code != 0 {
		return &errDoctorFindings{code: code}
	}
	return nil
}

func orEnv(v, env string) string {
	if v != "" {
		return v
	}
	return os.Getenv(env)
}

// doctorExitCode is the exit code for doctor's error: the report's own code when it was
// printed.
func doctorExitCode(err error) (int, bool) {
	var f *errDoctorFindings
	if errors.As(err, &f) {
		return f.code, true
	}
	return 0, false
}
