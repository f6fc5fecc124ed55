//go:build release

// The release check: `make release` runs it on the directory it just wrote (so it needs the
// release build tag and the flags below; `make unit` does not run it, see the Makefile).

package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/macho"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/vault-injector/vault-injector/internal/ociimage"
)

var (
	releaseDir = flag.String("release-dir", "", "directory written by hack/release")
	version    = flag.String("version", "", "version of that release")
	tag        = flag.String("tag", "", "image reference of that release")
	helmBin    = flag.String("helm", "helm", "helm binary")
)

// releasePlatforms are the CLI binaries a release carries; the image holds the Linux ones.
var releasePlatforms = []ociimage.Platform{
	{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"},
	{OS: "darwin", Arch: "amd64"}, {OS: "darwin", Arch: "arm64"},
}

func releaseFile(t *testing.T, name string) string {
	t.Helper()
	if *releaseDir == "" || *version == "" || *tag == "" {
		t.Fatal("run through `make release`: -release-dir, -version and -tag are required")
	}
	return filepath.Join(*releaseDir, name)
}

func TestReleaseChecksums(t *testing.T) {
	f, err := os.Open(releaseFile(t, checksumsName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	sums, err := parseChecksums(f)
	if err != nil {
		t.Fatalf("%s: %v", checksumsName, err)
	}
	want := []string{imageArchiveName(*version), chartName(*version)}
	for _, p := range releasePlatforms {
		want = append(want, binaryName(*version, p))
	}
	for _, name := range want {
		if _, ok := sums[name]; !ok {
			t.Errorf("%s does not list %s", checksumsName, name)
		}
	}
	entries, err := os.ReadDir(*releaseDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if isTopLevelFile(e) {
			if _, ok := sums[e.Name()]; !ok {
				t.Errorf("%s is in the release but not in %s", e.Name(), checksumsName)
			}
		}
	}
	for name, sum := range sums {
		got, err := fileSHA256(releaseFile(t, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got != sum {
			t.Errorf("%s: sha256 %s, %s says %s", name, got, checksumsName, sum)
		}
	}
}

// TestReleaseBinaries: each CLI binary is for the CPU and OS its name says, and the Linux ones
// are static (the image has no libc).
func TestReleaseBinaries(t *testing.T) {
	for _, p := range releasePlatforms {
		t.Run(p.String(), func(t *testing.T) {
			path := releaseFile(t, binaryName(*version, p))
			if p.OS == "linux" {
				if err := ociimage.CheckBinary(path, p); err != nil {
					t.Fatal(err)
				}
				return
			}
			f, err := macho.Open(path)
			if err != nil {
				t.Fatalf("not a Mach-O binary: %v", err)
			}
			t.Cleanup(func() { f.Close() })
			want := map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}[p.Arch]
			if f.Cpu != want || f.Type != macho.TypeExec {
				t.Fatalf("Mach-O %v %v, want an executable for %v", f.Cpu, f.Type, want)
			}
		})
	}
}

// TestReleaseImage: the layout names the release's image, its index lists linux/amd64 and
// linux/arm64, each image carries exactly the released Linux binary of its platform, and the
// archive holds the same index.
func TestReleaseImage(t *testing.T) {
	dir := releaseFile(t, imageLayoutName(*version))
	li, err := ociimage.ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	if li.Name != *tag {
		t.Errorf("the layout names the image %q, want %q", li.Name, *tag)
	}
	manifest, err := li.Index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	got := map[ociimage.Platform]bool{}
	for _, desc := range manifest.Manifests {
		p := ociimage.Platform{OS: desc.Platform.OS, Arch: desc.Platform.Architecture}
		got[p] = true
		img, err := li.Index.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		_, bin, err := ociimage.ReadFile(img, "vault-injector")
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		want, err := os.ReadFile(releaseFile(t, binaryName(*version, p)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bin, want) {
			t.Errorf("the %s image's /vault-injector is not the released %s", p, binaryName(*version, p))
		}
	}
	for _, p := range []ociimage.Platform{{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"}} {
		if !got[p] {
			t.Errorf("the image index does not list %s (it lists %v)", p, got)
		}
	}
	indexJSON, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(releaseFile(t, imageArchiveName(*version)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	want := sha256.Sum256(indexJSON)
	if sum := tarFileSHA256(t, f, "index.json"); sum != hex.EncodeToString(want[:]) {
		t.Errorf("%s holds another index.json than the layout", imageArchiveName(*version))
	}
}

// TestReleaseChart: the packaged chart has the release's version, lints, renders, and deploys
// the release's image by default.
func TestReleaseChart(t *testing.T) {
	chart := releaseFile(t, chartName(*version))
	helm := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(*helmBin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	helm("lint", chart)
	rendered := helm("template", "vault-injector", chart, "--namespace", "vault-injector")
	if !bytes.Contains(rendered, []byte("image: "+*tag+"\n")) && !bytes.Contains(rendered, []byte(`image: "`+*tag+`"`)) {
		t.Errorf("the rendered chart does not run image %s", *tag)
	}
	var meta struct{ Version, AppVersion string }
	if err := yaml.Unmarshal(chartYAML(t, chart), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Version != *version || meta.AppVersion != *version {
		t.Errorf("Chart.yaml version %q appVersion %q, want %q", meta.Version, meta.AppVersion, *version)
	}
}

func chartYAML(t *testing.T, tgz string) []byte {
	t.Helper()
	f, err := os.Open(tgz)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatal("no Chart.yaml in the package")
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == "vault-injector/Chart.yaml" {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

// tarFileSHA256 is the sha256 of one file of a tar stream.
func tarFileSHA256(t *testing.T, r io.Reader, name string) string {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s is not in the tar", name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == name {
			h := sha256.New()
			if _, err := io.Copy(h, tr); err != nil {
				t.Fatal(err)
			}
			return hex.EncodeToString(h.Sum(nil))
		}
	}
}
