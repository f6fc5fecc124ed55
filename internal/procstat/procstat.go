// Package procstat reads a process's memory figures from /proc, for the benchmarks and the
// test harnesses that report them.
package procstat

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
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

// CPUTime is the CPU time a process's live threads have run (the first field of each
// /proc/PID/task/TID/schedstat, in ns): unlike wall time it does not grow when a busy machine
// makes the process wait for a core. Threads that already exited are not counted.
func CPUTime(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		var ns int64
		if _, err := fmt.Sscan(string(b), &ns); err == nil {
			total += ns
		}
	}
	return time.Duration(total)
}

// LoadAverage is the first line of /proc/loadavg (1, 5 and 15 minute averages), for reports.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
