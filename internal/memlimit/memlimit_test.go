package memlimit

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// writeCgroup lays out a fake cgroup mount: name → content.
func writeCgroup(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64
		err   string
	}{
		{"v2 limit", map[string]string{"memory.max": "134217728\n"}, 128 << 20, ""},
		{"v2 max", map[string]string{"memory.max": "max\n"}, 0, ""},
		{"v1 limit", map[string]string{"memory/memory.limit_in_bytes": "134217728\n"}, 128 << 20, ""},
		{"v1 unlimited", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, ""},
		{"v2 wins over v1", map[string]string{"memory.max": "67108864", "memory/memory.limit_in_bytes": "134217728"}, 64 << 20, ""},
		{"no cgroup files", map[string]string{"cpu.max": "max 100000"}, 0, ""},
		{"zero", map[string]string{"memory.max": "0"}, 0, ""},
		{"garbage", map[string]string{"memory.max": "lots"}, 0, `"lots" is neither a byte count nor "max"`},
		{"negative", map[string]string{"memory/memory.limit_in_bytes": "-1"}, 0, "neither a byte count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Read(writeCgroup(t, tc.files))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Read = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

// restoreLimit puts the process's memory limit back after a test that sets it.
func restoreLimit(t *testing.T) {
	t.Helper()
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
}

func TestApply(t *testing.T) {
	for _, tc := range []struct {
		name       string
		gomemlimit string // "" leaves GOMEMLIMIT unset
		files      map[string]string
		source     string
		limit      int64
	}{
		{"cgroup limit", "", map[string]string{"memory.max": "134217728"}, "cgroup", 120795955},
		{"no cgroup limit", "", map[string]string{"memory.max": "max"}, "none", math.MaxInt64},
		{"explicit GOMEMLIMIT wins", "50MiB", map[string]string{"memory.max": "134217728"}, "GOMEMLIMIT", math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restoreLimit(t)
			debug.SetMemoryLimit(math.MaxInt64)
			if tc.gomemlimit != "" {
				// The runtime reads GOMEMLIMIT at start-up only; here the variable just has to
				// be present for Apply to keep its hands off.
				t.Setenv("GOMEMLIMIT", tc.gomemlimit)
			} else if v, ok := os.LookupEnv("GOMEMLIMIT"); ok {
				t.Setenv("GOMEMLIMIT", v) // restored after the test
				os.Unsetenv("GOMEMLIMIT")
			}
			got, err := Apply(writeCgroup(t, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if got.Source != tc.source || got.Limit != tc.limit || debug.SetMemoryLimit(-1) != tc.limit {
				t.Fatalf("Apply = %+v (runtime limit %d); want source %s, limit %d", got, debug.SetMemoryLimit(-1), tc.source, tc.limit)
			}
		})
	}
}
