// Package procstat reads a process's memory figures from /proc, for the benchmarks and the
// test harnesses that report them.
package procstat

import (
	"fmt"
	"os"
	"strings"
)

// Memory returns a process's resident set (VmRSS) and its peak (VmHWM) in KiB; zeros when the
// process is gone.
func Memory(pid int) (rssKiB, peakKiB int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		var v int
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &v); err == nil {
			rssKiB = v
		}
		if _, err := fmt.Sscanf(line, "VmHWM: %d kB", &v); err == nil {
			peakKiB = v
		}
	}
	return rssKiB, peakKiB
}

// ResetPeak resets a process's VmHWM to its current RSS (Linux clear_refs "5"), so a benchmark
// can report the peak of one phase; without permission or on another OS it does nothing.
func ResetPeak(pid int) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}
