//go:build scale

package scale

import (
	"fmt"
	"testing"
	"time"

	"github.com/vault-injector/vault-injector/internal/procstat"
	"github.com/vault-injector/vault-injector/test/testkit"
)

// usage is what one webhook process used while it was watched.
type usage struct {
	replica   string
	pid       int
	peakRSS   int // KiB, VmHWM after a reset at the start: the kernel's own peak
	maxSample int // KiB, the largest VmRSS sampled, as a check on the peak
	cpu       time.Duration
	peakCores float64 // the busiest second, in cores
	wall      time.Duration
}

func (u usage) String() string {
	return fmt.Sprintf("replica %s (pid %d): peak RSS %.1f MiB (largest sample %.1f MiB), CPU %s over %s (%.2f cores on average, %.2f in the busiest second)",
		u.replica, u.pid, float64(u.peakRSS)/1024, float64(u.maxSample)/1024, u.cpu.Round(time.Millisecond), u.wall.Round(100*time.Millisecond),
		u.cpu.Seconds()/u.wall.Seconds(), u.peakCores)
}

// procWatch samples the webhook processes of the replicas until stopped.
type procWatch struct {
	stop, done chan struct{}
	usage      []usage
}

// watchProcesses finds each replica's webhook process on this node (its container's cgroup,
// as /proc shows it) and samples its memory and CPU time every 250 ms.
func (r *replicas) watchProcesses(t *testing.T) *procWatch {
	t.Helper()
	w := &procWatch{stop: make(chan struct{}), done: make(chan struct{})}
	for _, rep := range r.list {
		p, err := r.pod(rep)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Status.ContainerStatuses) != 1 {
			t.Fatalf("pod %s: %d container statuses", p.Name, len(p.Status.ContainerStatuses))
		}
		pid, err := testkit.ContainerProcess(p.Status.ContainerStatuses[0].ContainerID, "webhook")
		if err != nil {
			t.Fatal(err)
		}
		// From here VmHWM is the peak of the rollout, not of the start-up.
		procstat.ResetPeak(pid)
		w.usage = append(w.usage, usage{replica: rep.shard, pid: pid})
	}
	go w.sample()
	return w
}

func (w *procWatch) sample() {
	defer close(w.done)
	start := time.Now()
	type mark struct {
		at  time.Time
		cpu time.Duration
	}
	first := make([]time.Duration, len(w.usage))
	windowStart := make([]mark, len(w.usage))
	for i, u := range w.usage {
		first[i] = procstat.CPUTime(u.pid)
		windowStart[i] = mark{start, first[i]}
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for stopped := false; !stopped; {
		select {
		case <-w.stop:
			stopped = true
		case <-tick.C:
		}
		now := time.Now()
		for i := range w.usage {
			u := &w.usage[i]
			rss, hwm := procstat.Memory(u.pid)
			u.maxSample, u.peakRSS = max(u.maxSample, rss), max(u.peakRSS, hwm)
			cpu := procstat.CPUTime(u.pid)
			u.cpu, u.wall = cpu-first[i], now.Sub(start)
			if d := now.Sub(windowStart[i].at); d >= time.Second {
				u.peakCores = max(u.peakCores, (cpu-windowStart[i].cpu).Seconds()/d.Seconds())
				windowStart[i] = mark{now, cpu}
			}
		}
	}
}

// finish stops the sampling and returns what each process used.
func (w *procWatch) finish() []usage {
	close(w.stop)
	<-w.done
	return w.usage
}
