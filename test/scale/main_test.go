//go:build scale

// Package scale rolls out pods at the scale of a real deployment through the real API server
// of test/cluster, while two webhook replicas installed from the Helm chart serve the
// admissions and rotate their self-managed certificate, and reports what the API server
// itself measured. Run with `make scale`.
package scale

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/vault-injector/vault-injector/test/cluster"
	"github.com/vault-injector/vault-injector/test/testkit"
)

var (
	ctx = context.Background()
	// node is the cluster every test of the package uses.
	node *cluster.Cluster
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

// run brings up the node alone: no Vault, since admission never talks to Vault and the pods
// of this suite are never started.
func run(m *testing.M) int {
	start := time.Now()
	dir, err := os.MkdirTemp("", "vault-injector-scale-build-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	_, images, err := testkit.BuildImages(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale setup:", err)
		return 1
	}
	// Ctrl-C or SIGTERM must still tear the node down.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			fmt.Fprintln(os.Stderr, "interrupted: tearing the cluster down")
			node.Stop()
			os.Exit(130)
		}
	}()
	node, err = cluster.Start(ctx, cluster.Options{Images: images, Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale setup:", err)
		return 1
	}
	defer node.Stop()
	fmt.Fprintf(os.Stderr, "[scale] node ready in %s\n", time.Since(start).Round(100*time.Millisecond))
	code := m.Run()
	if code != 0 {
		node.DumpLogs(os.Stderr)
	}
	return code
}
