package ociimage

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// LayoutIndex is the one entry of a layout written by WriteIndex.
type LayoutIndex struct {
	Name    string // the image reference, as `ctr images import` names it
	RefName string // the tag, as skopeo, oras and crane find it
	Digest  v1.Hash
	Index   v1.ImageIndex
}

// ReadIndex opens the image index of a layout written by WriteIndex (checks and tests read
// back what was written).
func ReadIndex(dir string) (LayoutIndex, error) {
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return LayoutIndex{}, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		return LayoutIndex{}, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	if len(im.Manifests) != 1 {
		return LayoutIndex{}, fmt.Errorf("OCI layout %s lists %d entries, want one image index", dir, len(im.Manifests))
	}
	entry := im.Manifests[0]
	idx, err := top.ImageIndex(entry.Digest)
	if err != nil {
		return LayoutIndex{}, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	return LayoutIndex{
		Name:    entry.Annotations[containerdNameAnnotation],
		RefName: entry.Annotations[ociRefNameAnnotation],
		Digest:  entry.Digest,
		Index:   idx,
	}, nil
}

// ReadFile returns one file of a single-layer image (as this package writes them).
func ReadFile(img v1.Image, path string) (*tar.Header, []byte, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, nil, fmt.Errorf("image layers: %w", err)
	}
	if len(layers) != 1 {
		return nil, nil, fmt.Errorf("image has %d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		return nil, nil, fmt.Errorf("image layer: %w", err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("%s is not in the image", path)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("image layer: %w", err)
		}
		if hdr.Name == path {
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, nil, fmt.Errorf("%s in the image: %w", path, err)
			}
			return hdr, b, nil
		}
	}
}
