// Package memlimit sets the Go runtime's soft memory limit from the container's cgroup memory
// limit. Without it the Go heap grows to twice the live set before a collection (GOGC=100),
// which the kernel's OOM killer does not wait for: a burst that the runtime could have
// absorbed by collecting sooner kills the container instead.
package memlimit

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// Fraction of the cgroup limit given to the Go runtime: the rest is for what the runtime does
// not count (the binary's pages, thread stacks outside the heap, fragmentation).
const Fraction = 0.9

// Cgroup limit files, relative to the cgroup mount, v2 first: a container sees its own cgroup
// at the mount point (cgroup namespaces on v2, a bind mount per controller on v1).
var limitFiles = []string{
	"memory.max",                   // cgroup v2
	"memory/memory.limit_in_bytes", // cgroup v1
}

// unlimited: cgroup v1 writes "no limit" as the largest page-aligned int64 (9223372036854771712)
// rather than a keyword; anything this large is no limit either.
const unlimited = 1 << 62

// Read returns the memory limit in bytes of the cgroup mounted at root (normally
// /sys/fs/cgroup), or 0 when there is none: no limit file, "max", or a huge value.
func Read(root string) (int64, error) {
	for _, name := range limitFiles {
		path := filepath.Join(root, name)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read cgroup memory limit: %w", err)
		}
		return parse(path, string(b))
	}
	return 0, nil
}

func parse(path, s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroup memory limit in %s: %q is neither a byte count nor \"max\"", path, s)
	}
	if n == 0 || n >= unlimited {
		return 0, nil
	}
	return int64(n), nil
}

// Setting is what Apply decided, for the start-up log.
type Setting struct {
	// Limit is the Go memory limit in bytes now in force; math.MaxInt64 means none.
	Limit int64
	// Source says where it came from: "GOMEMLIMIT", "cgroup", or "none".
	Source string
	// Cgroup is the container's limit in bytes, 0 when there is none.
	Cgroup int64
}

// Apply sets the Go memory limit to Fraction of the cgroup limit under root, unless the
// GOMEMLIMIT environment variable is set: an operator's explicit choice wins (the runtime has
// applied it already).
func Apply(root string) (Setting, error) {
	cg, err := Read(root)
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		return Setting{Limit: debug.SetMemoryLimit(-1), Source: "GOMEMLIMIT", Cgroup: cg}, err
	}
	if err != nil || cg == 0 {
		return Setting{Limit: debug.SetMemoryLimit(-1), Source: "none", Cgroup: cg}, err
	}
	limit := Of(cg)
	debug.SetMemoryLimit(limit)
	return Setting{Limit: limit, Source: "cgroup", Cgroup: cg}, nil
}

// Of is the Go memory limit Apply sets for a cgroup limit of cg bytes.
func Of(cg int64) int64 {
	return int64(math.Floor(float64(cg) * Fraction))
}
