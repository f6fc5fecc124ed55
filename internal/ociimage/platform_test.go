package ociimage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckBinary(t *testing.T) {
	bins := tinyBinaries(t)
	text := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Debian's /bin/sh (dash) is dynamically linked: the shape of a CGO_ENABLED=1 build.
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		path     string
		platform Platform
		wantErr  string
	}{
		{"amd64 binary for amd64", bins[linuxAMD64], linuxAMD64, ""},
		{"arm64 binary for arm64", bins[linuxARM64], linuxARM64, ""},
		{"amd64 binary for arm64", bins[linuxAMD64], linuxARM64, "is a binary for EM_X86_64, the linux/arm64 image needs EM_AARCH64"},
		{"not an ELF file", text, linuxAMD64, "is not a Linux executable (ELF) for linux/amd64"},
		{"dynamically linked", sh, linuxAMD64, "dynamically linked"},
		{"platform we do not build", bins[linuxAMD64], Platform{OS: "darwin", Arch: "arm64"}, "not one we build images for"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckBinary(tc.path, tc.platform)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestParsePlatform(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Platform
		wantErr bool
	}{
		{"linux/arm64", linuxARM64, false},
		{"linux/amd64", linuxAMD64, false},
		{"linux", Platform{}, true},
		{"linux/arm/v7", Platform{}, true},
		{"/arm64", Platform{}, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePlatform(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ParsePlatform(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
}

func TestBinariesFlag(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{"two platforms", []string{"linux/arm64=b/arm", "linux/amd64=b/amd"}, "linux/amd64=b/amd,linux/arm64=b/arm", ""},
		{"no binary", []string{"linux/arm64="}, "", "want os/arch=binary"},
		{"no platform", []string{"b/arm"}, "", "want os/arch=binary"},
		{"bad platform", []string{"arm64=b/arm"}, "", "want os/arch, like linux/arm64"},
		{"twice", []string{"linux/arm64=a", "linux/arm64=b"}, "", "linux/arm64 given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := Binaries{}
			var err error
			for _, a := range tc.args {
				if err = b.Set(a); err != nil {
					break
				}
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			case tc.wantErr == "" && b.String() != tc.want:
				t.Fatalf("String() = %q, want %q", b.String(), tc.want)
			}
		})
	}
}
