//go:build !webhookonly

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/vault-injector/vault-injector/agent"
	"github.com/vault-injector/vault-injector/envexec"
	"github.com/vault-injector/vault-injector/inject"
	"github.com/vault-injector/vault-injector/internal/cliflags"
)

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

var commands = map[string]command{
	"inject":  errCommand("inject", runInject),
	"migrate": errCommand("migrate", runMigrate),
	"policy":  errCommand("policy", runPolicy),
	"agent": func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
		return agent.Main(ctx, args, stdout, stderr)
	},
	"exec": func(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
		return envexec.Main(args, stdout, stderr)
	},
	"doctor": func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		err := runDoctor(ctx, args, stdin, stdout, stderr)
		if code, ok := doctorExitCode(err); ok {
			return code
		}
		return exitCode("doctor", err, stderr)
	},
}

// errCommand adapts a command that returns an error (printed, exit 1; --help exits 0).
func errCommand(name string, run func(args []string, stdin io.Reader, stdout, stderr io.Writer) error) command {
	return func(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		return exitCode(name, run(args, stdin, stdout, stderr), stderr)
	}
}

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
