// Package ociimage writes single-layer container images without a Docker engine or a registry:
// a single-platform tarball that `ctr images import` (and `docker load`) accept, or a
// multi-platform image index as an OCI image layout, plain or archived.
package ociimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one entry of the image's only layer.
type File struct {
	Mode os.FileMode
	// Content, or Source (a path on this machine), or Generate (content made when the
	// image is written), or Link (a symlink target).
	Content  []byte
	Source   string
	Generate func() ([]byte, error)
	Link     string
}

// Spec describes an image.
type Spec struct {
	Tag        string
	Files      map[string]File // path inside the image, without a leading slash
	Entrypoint []string
	Cmd        []string
	User       string
	Env        []string
}

// epoch keeps layers reproducible: the same inputs give the same digest.
var epoch = time.Unix(0, 0)

// Write writes the image for linux/amd64 as a tarball at path (the format of `docker save`),
// which `ctr images import` and `docker load` accept: what the e2e node imports.
func Write(path string, s Spec) error {
	img, err := build(s, Platform{OS: "linux", Arch: "amd64"}, dockerTypes)
	if err != nil {
		return err
	}
	ref, err := name.NewTag(s.Tag)
	if err != nil {
		return fmt.Errorf("image tag %q: %w", s.Tag, err)
	}
	if err := tarball.WriteToFile(path, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// mediaTypes are the media types of an image's manifest, config and layer: Docker's for the
// `docker save` tarball (as before), OCI's for an OCI layout.
type mediaTypes struct{ manifest, config, layer types.MediaType }

var (
	dockerTypes = mediaTypes{types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer}
	ociTypes    = mediaTypes{types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer}
)

// build makes the single-layer image of s for platform p.
func build(s Spec, p Platform, mt mediaTypes) (v1.Image, error) {
	layerTar, err := layer(s.Files)
	if err != nil {
		return nil, err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(mt.layer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, mt.manifest), mt.config)
	img, err := mutate.AppendLayers(base, l)
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = p.Arch, p.OS
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint, cf.Config.Cmd, cf.Config.User = s.Entrypoint, s.Cmd, s.User
	cf.Config.Env = s.Env
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return img, nil
}

func layer(files map[string]File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	dirs := map[string]bool{}
	for _, p := range paths {
		// Parent directories first, so extractors create them with sane modes.
		for i := 0; i < len(p); i++ {
			if p[i] == '/' && !dirs[p[:i]] {
				dirs[p[:i]] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p[:i] + "/", Mode: 0o755, ModTime: epoch}); err != nil {
					return nil, err
				}
			}
		}
		f := files[p]
		hdr := &tar.Header{Name: p, Mode: int64(f.Mode.Perm()), ModTime: epoch}
		switch {
		case f.Link != "":
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, f.Link
			hdr.Mode = 0o777
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, err
			}
			continue
		case f.Mode.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, p+"/"
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, err
			}
			continue
		}
		content := f.Content
		switch {
		case f.Source != "":
			b, err := os.ReadFile(f.Source)
			if err != nil {
				return nil, err
			}
			content = b
		case f.Generate != nil:
			b, err := f.Generate()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			content = b
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(content))
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(content); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// AgentBinary is the name of the agent's binary (cmd/vault-injector-agent), in the image and
// beside the main binary wherever that is built.
const AgentBinary = "vault-injector-agent"

// WebhookBinary is the name of the webhook's binary (cmd/vault-injector built with the tag
// webhookonly), which the chart's Deployment runs; in the image and beside the main binary.
const WebhookBinary = "vault-injector-webhook"

// Product is the vault-injector image: the static CLI binary (the entrypoint), the webhook's and
// the agent's binaries that the Deployment and injected containers run (read from binary's
// directory), run as a non-root
// user, and the public CAs (so the agent verifies a publicly trusted Vault without a CA
// ConfigMap).
func Product(tag, binary string) Spec {
	return Spec{
		Tag: tag,
		Files: map[string]File{
			"vault-injector": {Mode: 0o755, Source: binary},
			AgentBinary:      {Mode: 0o755, Source: filepath.Join(filepath.Dir(binary), AgentBinary)},
			WebhookBinary:    {Mode: 0o755, Source: filepath.Join(filepath.Dir(binary), WebhookBinary)},
			"etc/passwd":     {Mode: 0o644, Content: []byte("root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n")},
			CABundlePath:     {Mode: 0o644, Generate: CABundle},
		},
		Entrypoint: []string{"/vault-injector"},
		User:       "65532:65532",
	}
}

// BusyboxApplets are the commands the app image links to busybox.
var BusyboxApplets = []string{"sh", "httpd", "cat", "ls", "sleep", "echo", "true", "false", "wget", "env", "id", "kill", "ps", "trap", "test", "grep", "printf", "date", "mkdir", "rm", "touch", "nc"}

// Busybox is a small app image: Debian's static busybox with its common applets.
func Busybox(tag, busybox string) Spec {
	files := map[string]File{"bin/busybox": {Mode: 0o755, Source: busybox}, "tmp": {Mode: os.ModeDir | 0o777}}
	for _, a := range BusyboxApplets {
		files["bin/"+a] = File{Link: "busybox"}
	}
	return Spec{Tag: tag, Files: files, Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}}
}
