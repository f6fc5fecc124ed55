package ociimage

import (
	"debug/elf"
	"fmt"
	"sort"
	"strings"
)

// Platform is the operating system and CPU architecture an image runs on, spelled as Go and
// the OCI image spec both spell them (linux/amd64, linux/arm64).
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// ParsePlatform reads "os/arch".
func ParsePlatform(s string) (Platform, error) {
	os, arch, ok := strings.Cut(s, "/")
	if !ok || os == "" || arch == "" || strings.Contains(arch, "/") {
		return Platform{}, fmt.Errorf("platform %q: want os/arch, like linux/arm64", s)
	}
	return Platform{OS: os, Arch: arch}, nil
}

// elfMachines are the CPUs of the Linux platforms we build images for.
var elfMachines = map[string]elf.Machine{
	"amd64": elf.EM_X86_64,
	"arm64": elf.EM_AARCH64,
}

// CheckBinary fails unless the file at path is an ELF executable for p's CPU: a binary of the
// wrong architecture would make the image start on no node of that platform ("exec format
// error"), and a mix-up of two paths is easy to make and invisible in the index.
func CheckBinary(path string, p Platform) error {
	want, ok := elfMachines[p.Arch]
	if p.OS != "linux" || !ok {
		return fmt.Errorf("%s: platform %s is not one we build images for (linux/amd64, linux/arm64)", path, p)
	}
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s is not a Linux executable (ELF) for %s: %w", path, p, err)
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("%s is a binary for %s, the %s image needs %s", path, f.Machine, p, want)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%s is an ELF %s, not an executable", path, f.Type)
	}
	// The images hold no C library and no loader: only a static binary (CGO_ENABLED=0) starts.
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; the image has no loader or libc: build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}

// Binaries maps each platform to its binary; as a flag.Value it collects repeated
// os/arch=path arguments (--platform linux/arm64=bin/linux-arm64/vault-injector).
type Binaries map[Platform]string

func (b Binaries) String() string {
	parts := make([]string, 0, len(b))
	for p, bin := range b {
		parts = append(parts, p.String()+"="+bin)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// Set adds one os/arch=path.
func (b Binaries) Set(v string) error {
	p, bin, ok := strings.Cut(v, "=")
	if !ok || bin == "" {
		return fmt.Errorf("%q: want os/arch=binary", v)
	}
	platform, err := ParsePlatform(p)
	if err != nil {
		return err
	}
	if _, dup := b[platform]; dup {
		return fmt.Errorf("%s given twice", platform)
	}
	b[platform] = bin
	return nil
}
