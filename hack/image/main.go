// Command image writes the vault-injector image for several platforms (an image index) as an
// OCI image layout, and optionally as one tar file of that layout, without Docker or a
// registry: `make image` runs it. Load the archive with `ctr -n k8s.io images import` (it
// unpacks the host's platform); push the layout with `crane push` (no --index: the layout's one
// entry is the index already), `skopeo copy --all oci:` or `oras cp --from-oci-layout`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/vault-injector/vault-injector/internal/ociimage"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	tag := fs.String("tag", "ghcr.io/vault-injector/vault-injector:0.1.0", "image reference")
	dir := fs.String("layout", "bin/vault-injector-image", "OCI image layout directory to write (replaced if it holds a layout)")
	archive := fs.String("archive", "", "also write the layout as this tar file (empty: none)")
	binaries := ociimage.Binaries{}
	fs.Var(binaries, "platform", "os/arch=static binary, once per platform (linux/amd64=bin/linux-amd64/vault-injector)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(binaries) == 0 {
		return fmt.Errorf("no --platform given")
	}
	if err := ociimage.RemoveLayout(*dir); err != nil {
		return err
	}
	digest, err := ociimage.WriteIndex(*dir, *tag, ociimage.ProductImages(*tag, binaries))
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s (%s@%s, %d platforms)\n", *dir, *tag, digest, len(binaries))
	if *archive != "" {
		if err := ociimage.WriteArchive(*dir, *archive); err != nil {
			return err
		}
		fmt.Printf("wrote %s\n", *archive)
	}
	return nil
}
