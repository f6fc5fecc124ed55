package testkit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ContainerProcess finds the process of a container running on the test node whose command
// line contains arg: containerID is a pod status's ContainerID (runtime://id), and the
// container's processes are those whose /proc/PID/cgroup names that id.
func ContainerProcess(containerID, arg string) (int, error) {
	id := containerID
	if i := strings.Index(id, "://"); i >= 0 {
		id = id[i+3:]
	}
	if id == "" {
		return 0, fmt.Errorf("no container id in %q", containerID)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), id) {
			continue
		}
		var pid int
		fmt.Sscanf(filepath.Base(filepath.Dir(f)), "%d", &pid)
		cmdline, _ := os.ReadFile(filepath.Join("/proc", fmt.Sprint(pid), "cmdline"))
		if strings.Contains(string(cmdline), arg) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no process of container %s with %q in its command line", id, arg)
}
