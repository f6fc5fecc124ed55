// Package testkit holds what the cluster test suites (test/e2e, test/scale) share: the module
// root, the product binary and the images the node imports, rendering the Helm chart, and
// finding a container's processes on the node.
package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vault-injector/vault-injector/internal/ociimage"
	"github.com/vault-injector/vault-injector/test/cluster"
)

const (
	// AgentImage is the product image the node imports (webhook and injected agent).
	AgentImage = "ghcr.io/vault-injector/vault-injector:0.1.0"
	// AppImage is a busybox-static image for application containers.
	AppImage = "e2e.local/busybox:1"
)

// ModuleRoot is the directory of this module's go.mod, found upwards from the working directory.
func ModuleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/vault-injector/vault-injector\n") {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("module root not found")
		}
		d = parent
	}
}

// BuildImages builds the product binary into dir and writes the product, pause and busybox
// images there; it returns the binary and the image tarballs for cluster.Options.Images.
func BuildImages(dir string) (binary string, images []string, err error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", nil, err
	}
	binary = filepath.Join(dir, "vault-injector")
	pause := filepath.Join(dir, "pause")
	// ociimage.Product takes the agent's and the webhook's binaries from beside the main one.
	for _, b := range []struct{ out, pkg, tags string }{
		{binary, "./cmd/vault-injector", ""},
		{filepath.Join(dir, ociimage.AgentBinary), "./cmd/vault-injector-agent", ""},
		{filepath.Join(dir, ociimage.WebhookBinary), "./cmd/vault-injector", "webhookonly"},
		{pause, "./test/images/pause", ""},
	} {
		out, pkg := b.out, b.pkg
		cmd := exec.Command("go", "build", "-trimpath", "-tags="+b.tags, "-ldflags", "-s -w", "-o", out, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", nil, fmt.Errorf("build %s: %v\n%s", pkg, err, b)
		}
	}
	busybox := "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		return "", nil, fmt.Errorf("%s missing: run make tools (installs busybox-static)", busybox)
	}
	specs := map[string]ociimage.Spec{
		"product.tar": ociimage.Product(AgentImage, binary),
		"pause.tar":   {Tag: cluster.PauseImage, Files: map[string]ociimage.File{"pause": {Mode: 0o755, Source: pause}}, Entrypoint: []string{"/pause"}},
		"busybox.tar": ociimage.Busybox(AppImage, busybox),
	}
	for name, s := range specs {
		p := filepath.Join(dir, name)
		if err := ociimage.Write(p, s); err != nil {
			return "", nil, err
		}
		images = append(images, p)
	}
	return binary, images, nil
}
