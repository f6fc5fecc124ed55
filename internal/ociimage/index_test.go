package ociimage

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var (
	linuxAMD64 = Platform{OS: "linux", Arch: "amd64"}
	linuxARM64 = Platform{OS: "linux", Arch: "arm64"}
)

// tinyProgram is the smallest static Go program: cross-compiling it is cheap (each
// architecture's runtime is built once into the Go build cache, and the link is cached too),
// unlike the product binary, whose arm64 build `make release` checks.
const tinyProgram = "package main\n\nfunc main() { println(\"tiny\") }\n"

// tinyBinaries cross-compiles tinyProgram for linux/amd64 and linux/arm64, each into a
// directory of its own as vault-injector, with the same program beside it as the agent's binary.
func tinyBinaries(t *testing.T) map[Platform]string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(tinyProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	bins := map[Platform]string{}
	for _, p := range []Platform{linuxAMD64, linuxARM64} {
		if err := os.Mkdir(filepath.Join(dir, p.Arch), 0o755); err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, p.Arch, "vault-injector")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, src)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cross-compile a tiny program for %s: %v\n%s", p, err, out)
		}
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{AgentBinary, WebhookBinary} {
			if err := os.WriteFile(filepath.Join(dir, p.Arch, name), b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		bins[p] = bin
	}
	return bins
}

// productIndex writes the product image for both platforms, from the given binaries.
func productIndex(t *testing.T, bins map[Platform]string) (string, v1.Hash) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "oci")
	d, err := WriteIndex(dir, "example.test/vault-injector:1.2.3", ProductImages("example.test/vault-injector:1.2.3", bins))
	if err != nil {
		t.Fatal(err)
	}
	return dir, d
}

// TestWriteIndex reads the layout back the way a registry client would: one named entry, an
// index listing linux/amd64 and linux/arm64, and in each image a binary for that CPU.
func TestWriteIndex(t *testing.T) {
	dir, digest := productIndex(t, tinyBinaries(t))
	li, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	if li.Digest != digest {
		t.Errorf("index.json points at %s, WriteIndex returned %s", li.Digest, digest)
	}
	if li.Name != "example.test/vault-injector:1.2.3" || li.RefName != "1.2.3" {
		t.Errorf("layout names the image %q (containerd) and %q (OCI ref name)", li.Name, li.RefName)
	}
	idx := li.Index
	manifest, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64}
	if len(manifest.Manifests) != len(want) {
		t.Fatalf("the index lists %d images, want %d", len(manifest.Manifests), len(want))
	}
	for _, desc := range manifest.Manifests {
		if desc.Platform == nil {
			t.Fatalf("image %s has no platform in the index", desc.Digest)
		}
		p := desc.Platform.OS + "/" + desc.Platform.Architecture
		t.Run(p, func(t *testing.T) {
			machine, ok := want[p]
			if !ok {
				t.Fatalf("unexpected platform %s", p)
			}
			img, err := idx.Image(desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if got := cf.OS + "/" + cf.Architecture; got != p {
				t.Errorf("image config says %s, the index says %s", got, p)
			}
			if got := strings.Join(cf.Config.Entrypoint, " "); got != "/vault-injector" {
				t.Errorf("entrypoint %q", got)
			}
			for _, name := range []string{"vault-injector", AgentBinary, WebhookBinary} {
				_, bin := fileInImage(t, img, name)
				f, err := elf.NewFile(bytes.NewReader(bin))
				if err != nil {
					t.Fatalf("/%s is not an ELF file: %v", name, err)
				}
				if f.Machine != machine {
					t.Errorf("/%s of the %s image is for %s, want %s", name, p, f.Machine, machine)
				}
			}
		})
	}
}

// TestWriteIndexRefuses: a binary of the wrong CPU, a platform given twice, a bad tag, or a
// leftover layout never become an index.
func TestWriteIndexRefuses(t *testing.T) {
	bins := tinyBinaries(t)
	product := func(p Platform, bin string) PlatformImage {
		return PlatformImage{Platform: p, Spec: Product("example.test/vi:1", bin)}
	}
	existing := t.TempDir()
	for _, tc := range []struct {
		name    string
		dir     string
		tag     string
		images  []PlatformImage
		wantErr string
	}{
		{"binaries swapped", "", "example.test/vi:1",
			[]PlatformImage{product(linuxAMD64, bins[linuxARM64]), product(linuxARM64, bins[linuxAMD64])},
			"is a binary for EM_AARCH64, the linux/amd64 image needs EM_X86_64"},
		{"agent's binary for the wrong CPU", "", "example.test/vi:1",
			[]PlatformImage{{Platform: linuxAMD64, Spec: func() Spec {
				s := Product("example.test/vi:1", bins[linuxAMD64])
				s.Files[AgentBinary] = File{Mode: 0o755, Source: filepath.Join(filepath.Dir(bins[linuxARM64]), AgentBinary)}
				return s
			}()}},
			"/vault-injector-agent: " + filepath.Join(filepath.Dir(bins[linuxARM64]), AgentBinary) + " is a binary for EM_AARCH64"},
		{"platform twice", "", "example.test/vi:1",
			[]PlatformImage{product(linuxAMD64, bins[linuxAMD64]), product(linuxAMD64, bins[linuxAMD64])},
			"platform linux/amd64 given twice"},
		{"no platform", "", "example.test/vi:1", nil, "no platform"},
		{"bad tag", "", "Not A Tag", []PlatformImage{product(linuxAMD64, bins[linuxAMD64])}, `image tag "Not A Tag"`},
		{"layout exists", existing, "example.test/vi:1",
			[]PlatformImage{product(linuxAMD64, bins[linuxAMD64])}, "already exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir
			if dir == "" {
				dir = filepath.Join(t.TempDir(), "oci")
			}
			_, err := WriteIndex(dir, tc.tag, tc.images)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}
