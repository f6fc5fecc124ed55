package cluster

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Stop tears the stack down: pods first (through the API, so the kubelet stops them), then
// kubelet, leftover containers, containerd, controller-manager, API server, etcd; then mounts,
// the bridge, host paths and sysctls are put back. It is safe to call twice.
func (c *Cluster) Stop() {
	if c == nil || c.stopped {
		return
	}
	c.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if c.running("kubelet") && c.running("kube-apiserver") && c.Client != nil {
		c.deleteAllPods(ctx)
	}
	c.stop("kubelet", 10*time.Second)
	if c.running("containerd") {
		if out, err := c.Ctr("-n", "k8s.io", "tasks", "ls", "-q"); err == nil {
			for _, t := range strings.Fields(out) {
				_, _ = c.Ctr("-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", t)
			}
			time.Sleep(500 * time.Millisecond)
			for _, t := range strings.Fields(out) {
				_, _ = c.Ctr("-n", "k8s.io", "tasks", "delete", "-f", t)
			}
		}
		if out, err := c.Ctr("-n", "k8s.io", "containers", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				_, _ = c.Ctr("-n", "k8s.io", "containers", "delete", id)
			}
		}
	}
	c.stop("containerd", 10*time.Second)
	c.stop("kube-scheduler", 5*time.Second)
	c.stop("kube-controller-manager", 5*time.Second)
	c.stop("kube-apiserver", 10*time.Second)
	c.stop("etcd", 10*time.Second)
	for _, p := range c.procs {
		c.stop(p.Name, 5*time.Second)
	}
	killShims(c.Dir)
	unmountUnder(c.Dir)
	_ = exec.Command("ip", "link", "del", "vi-e2e0").Run()
	for _, d := range c.hostDirs {
		unmountUnder(d)
		_ = os.RemoveAll(d)
	}
	for _, h := range []string{"kubepods", "k8s.io"} {
		matches, _ := filepath.Glob("/sys/fs/cgroup/*/" + h)
		for _, m := range matches {
			removeCgroupTree(m)
		}
	}
	for k, v := range c.sysctls {
		_ = os.WriteFile("/proc/sys/"+k, []byte(v), 0o644)
	}
	if os.Getenv("VAULT_INJECTOR_KEEP_E2E_DIR") == "" {
		_ = os.RemoveAll(c.Dir)
	}
	if c.lock != nil {
		_ = syscall.Flock(int(c.lock.Fd()), syscall.LOCK_UN)
		c.lock.Close()
	}
	c.progress("stopped and cleaned up")
}

func (c *Cluster) deleteAllPods(ctx context.Context) {
	nss, err := c.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	grace := int64(1)
	for _, ns := range nss.Items {
		_ = c.Client.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &grace}, metav1.ListOptions{})
	}
	for ctx.Err() == nil {
		pods, err := c.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil || len(pods.Items) == 0 {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (c *Cluster) running(name string) bool {
	p := c.byName[name]
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (c *Cluster) stop(name string, grace time.Duration) {
	p := c.byName[name]
	if p == nil || !c.running(name) {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// killShims stops containerd shims left behind for this stack (they outlive containerd).
func killShims(dir string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if bytes.Contains(cmdline, []byte("containerd-shim-runc-v2")) && bytes.Contains(cmdline, []byte(dir)) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func unmountUnder(dir string) {
	for i := 0; i < 3; i++ {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return
		}
		var mounts []string
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
				mounts = append(mounts, f[4])
			}
		}
		if len(mounts) == 0 {
			return
		}
		// Deepest first.
		for j := len(mounts) - 1; j >= 0; j-- {
			if err := syscall.Unmount(mounts[j], 0); err != nil {
				_ = syscall.Unmount(mounts[j], syscall.MNT_DETACH)
			}
		}
	}
}

func removeCgroupTree(root string) {
	var dirs []string
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Remove(dirs[i])
	}
}
