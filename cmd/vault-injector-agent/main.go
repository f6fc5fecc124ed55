// Command vault-injector-agent is what runs in application pods: `agent` (log in, render,
// renew, revoke) and `exec` (an app container's command with the env file's variables). The
// same faces are in vault-injector; this binary leaves out the webhook's, inject's and
// doctor's libraries (client-go, Prometheus, ...), whose package initialisers would run at
// every agent start: half the start-up time of the full binary, at half its size (the exec
// style copies it into every wrapped pod).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/vault-injector/vault-injector/agent"
	"github.com/vault-injector/vault-injector/envexec"
)

var version = "dev"

const usage = `vault-injector-agent %s: runs in the pods vault-injector injects.

  vault-injector-agent agent [flags]          log in to Vault, render, renew, revoke
  vault-injector-agent agent ready            the native sidecar's startup probe
  vault-injector-agent exec -- cmd [args]     cmd with the env file's variables
  vault-injector-agent version
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, version)
		return 2
	}
	switch args[0] {
	case "agent":
		return agent.Main(ctx, args[1:], stdout, stderr)
	case "exec":
		return envexec.Main(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprintf(stdout, usage, version)
		return 0
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n"+usage, args[0], version)
	return 2
}
