// Command release writes what a release of vault-injector needs into one directory, without a
// registry: the CLI binaries, the multi-platform image as an OCI image layout (and that layout
// as one tar file), the packaged Helm chart, and SHA256SUMS. `make release` builds the binaries,
// runs it, then checks the result (release_test.go).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/vault-injector/vault-injector/internal/ociimage"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

// options are the flags of a release run.
type options struct {
	version, tag, out, chart, helm string
	binaries                       ociimage.Binaries
}

func parseFlags(args []string) (options, error) {
	o := options{binaries: ociimage.Binaries{}}
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	fs.StringVar(&o.version, "version", "", "release version, SemVer without a v (0.1.0)")
	fs.StringVar(&o.tag, "tag", "", "image reference (ghcr.io/vault-injector/vault-injector:0.1.0)")
	fs.StringVar(&o.out, "out", "bin/release", "directory to write (replaced if it holds a previous release)")
	fs.StringVar(&o.chart, "chart", "deploy/helm/vault-injector", "Helm chart directory")
	fs.StringVar(&o.helm, "helm", "helm", "helm binary")
	fs.Var(o.binaries, "binary", "os/arch=static vault-injector binary, once per platform")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	switch {
	case o.version == "" || strings.HasPrefix(o.version, "v"):
		return options{}, fmt.Errorf("--version %q: want SemVer without a leading v, like 0.1.0", o.version)
	case o.tag == "":
		return options{}, fmt.Errorf("--tag is required")
	case len(o.binaries) == 0:
		return options{}, fmt.Errorf("no --binary given")
	}
	return o, nil
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if err := cleanOut(o.out); err != nil {
		return err
	}
	if err := copyBinaries(o); err != nil {
		return err
	}
	if err := writeImage(o); err != nil {
		return err
	}
	if err := packageChart(o); err != nil {
		return err
	}
	if err := writeChecksums(o.out); err != nil {
		return err
	}
	fmt.Printf("release %s written to %s\n", o.version, o.out)
	return nil
}
