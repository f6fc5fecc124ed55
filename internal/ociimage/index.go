package ociimage

import (
	"fmt"
	"os"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PlatformImage is one platform's image of a multi-platform index.
type PlatformImage struct {
	Platform Platform
	Spec     Spec
}

const (
	// containerdNameAnnotation names the image when `ctr images import` reads the layout (it
	// prefers it to the OCI ref name, which by convention holds only the tag).
	containerdNameAnnotation = "io.containerd.image.name"
	// ociRefNameAnnotation is how skopeo (oci:DIR:TAG), oras and crane find the image.
	ociRefNameAnnotation = "org.opencontainers.image.ref.name"
)

// WriteIndex writes one image per platform and the image index listing them, named tag, as an
// OCI image layout in dir (which must not exist yet, so that no stale blob or second index
// entry sneaks in). Each image's entrypoint, when it comes from a file on this machine, must be
// a static binary for that image's platform. It returns the index's digest.
func WriteIndex(dir, tag string, images []PlatformImage) (v1.Hash, error) {
	ref, err := name.NewTag(tag)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image tag %q: %w", tag, err)
	}
	if len(images) == 0 {
		return v1.Hash{}, fmt.Errorf("image index %s: no platform", tag)
	}
	if _, err := os.Stat(dir); err == nil {
		return v1.Hash{}, fmt.Errorf("OCI layout %s already exists; remove it first", dir)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	seen := map[Platform]bool{}
	for _, pi := range images {
		if seen[pi.Platform] {
			return v1.Hash{}, fmt.Errorf("image index %s: platform %s given twice", tag, pi.Platform)
		}
		seen[pi.Platform] = true
		if err := checkEntrypoint(pi); err != nil {
			return v1.Hash{}, err
		}
		img, err := build(pi.Spec, pi.Platform, ociTypes)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("image for %s: %w", pi.Platform, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: pi.Platform.OS, Architecture: pi.Platform.Arch}},
		})
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	annotations := map[string]string{containerdNameAnnotation: ref.Name(), ociRefNameAnnotation: ref.TagStr()}
	if err := p.AppendIndex(idx, layout.WithAnnotations(annotations)); err != nil {
		return v1.Hash{}, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image index digest: %w", err)
	}
	return d, nil
}

// checkEntrypoint refuses an image whose executables (the entrypoint and the agent's binary)
// are not for its platform.
func checkEntrypoint(pi PlatformImage) error {
	names := make([]string, 0, len(pi.Spec.Files))
	for name := range pi.Spec.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if f := pi.Spec.Files[name]; f.Source != "" && f.Mode&0o111 != 0 {
			if err := CheckBinary(f.Source, pi.Platform); err != nil {
				return fmt.Errorf("/%s: %w", name, err)
			}
		}
	}
	return nil
}

// ProductImages is the product image (see Product) for each platform, from that platform's
// binary, in a stable order (by platform) so the index's digest depends only on the inputs.
func ProductImages(tag string, binaries map[Platform]string) []PlatformImage {
	out := make([]PlatformImage, 0, len(binaries))
	for p, bin := range binaries {
		out = append(out, PlatformImage{Platform: p, Spec: Product(tag, bin)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Platform.String() < out[j].Platform.String() })
	return out
}
