package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// notify tells the app that files changed.
func (a *Agent) notify(ctx context.Context) {
	n := a.cfg.Notify
	if n == nil {
		return
	}
	if n.Signal != "" && n.Process != "" {
		sig := agentconfig.Signals[n.Signal]
		pids := findProcesses(n.Process)
		for _, pid := range pids {
			if err := syscall.Kill(pid, sig); err != nil {
				a.log.Warn("signal not sent", "pid", pid, "process", n.Process, "error", err.Error())
			}
		}
		if len(pids) == 0 {
			a.log.Warn("no process to notify; does the pod set shareProcessNamespace: true?", "process", n.Process)
		} else {
			a.log.Info("notified", "process", n.Process, "signal", n.Signal, "pids", len(pids))
		}
	}
	if len(n.Command) > 0 {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(cctx, n.Command[0], n.Command[1:]...).CombinedOutput()
		if err != nil {
			a.log.Warn("notify command failed", "command", n.Command[0], "error", err.Error(), "output", strings.TrimSpace(string(out)))
		}
	}
}

// findProcesses returns the PIDs whose /proc/<pid>/comm is name.
func findProcesses(name string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == self {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(comm)) == name {
			pids = append(pids, pid)
		}
	}
	return pids
}
