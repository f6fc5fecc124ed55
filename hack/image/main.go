// Command image writes the vault-injector image as a tarball, without Docker or a registry:
// `make image` runs it; load the result with `ctr -n k8s.io images import` or `docker load`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/vault-injector/vault-injector/internal/ociimage"
)

func main() {
	binary := flag.String("binary", "bin/vault-injector", "static vault-injector binary")
	tag := flag.String("tag", "ghcr.io/vault-injector/vault-injector:0.1.0", "image reference")
	out := flag.String("out", "bin/vault-injector-image.tar", "tarball to write")
	flag.Parse()
	if err := ociimage.Write(*out, ociimage.Product(*tag, *binary)); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%s)\n", *out, *tag)
}
