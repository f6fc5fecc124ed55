package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func (c *Cluster) startContainerd(ctx context.Context, bins map[string]string, images []string) error {
	c.sock = filepath.Join(c.Dir, "containerd", "containerd.sock")
	cfg := fmt.Sprintf(`version = 3
root = "%[1]s/containerd/root"
state = "%[1]s/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing", "io.containerd.nri.v1.nri"]
[grpc]
  address = "%[2]s"
[metrics]
  address = ""
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "%[3]s"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = ""
[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  disable_apparmor = true
  # root lacks CAP_SYS_RESOURCE here: a negative oom_score_adj kills runc init.
  restrict_oom_score_adj = true
  tolerate_missing_hugetlb_controller = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = "%[4]s"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "%[1]s/cni/net.d"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`, c.Dir, c.sock, PauseImage, bins["containerd-shim-runc-v2"])
	if err := os.WriteFile(filepath.Join(c.Dir, "containerd", "config.toml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	// The node is Ready only once a CNI config exists, even if every pod uses hostNetwork.
	cni := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"e2e","plugins":[{"type":"bridge","bridge":"vi-e2e0","isGateway":false,"isDefaultGateway":false,"ipMasq":false,"hairpinMode":false,
"ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.0.0/24"}]],"routes":[],"dataDir":"%s/cni/ipam"}}]}`, c.Dir)
	if err := os.WriteFile(filepath.Join(c.Dir, "cni", "net.d", "10-e2e.conflist"), []byte(cni), 0o644); err != nil {
		return err
	}
	c.noteHostDir("/run/containerd")
	if _, err := c.start("containerd", bins["containerd"], "--config", filepath.Join(c.Dir, "containerd", "config.toml")); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(c.sock); err == nil {
			if out, err := c.Ctr("version"); err == nil {
				_ = out
				break
			}
		}
		if time.Now().After(deadline) {
			return errors.New("containerd did not come up in 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, img := range images {
		if out, err := c.Ctr("-n", "k8s.io", "images", "import", img); err != nil {
			return fmt.Errorf("import %s: %v: %s", img, err, out)
		}
	}
	c.progress("containerd up, %d images imported", len(images))
	return nil
}

// Ctr runs containerd's ctr against this stack's containerd.
func (c *Cluster) Ctr(args ...string) (string, error) {
	out, err := exec.Command(c.ctr, append([]string{"--address", c.sock}, args...)...).CombinedOutput()
	return string(out), err
}

func (c *Cluster) noteHostDir(d string) {
	if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
		c.hostDirs = append(c.hostDirs, d)
	}
}

func (c *Cluster) startKubelet(ctx context.Context, bin string) error {
	cfg := kubeletConfig(c.Dir, c.sock, c.Version)
	if err := os.WriteFile(filepath.Join(c.Dir, "kubelet-config.yaml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	// The kubelet changes these sysctls and creates these host paths: put them back at Stop.
	for _, k := range []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"} {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			c.sysctls[k] = strings.TrimSpace(string(b))
		}
	}
	for _, d := range []string{"/var/lib/kubelet", "/var/log/containers", "/usr/libexec/kubernetes"} {
		c.noteHostDir(d)
	}
	_, err := c.start("kubelet", bin, "--config", filepath.Join(c.Dir, "kubelet-config.yaml"),
		"--kubeconfig", filepath.Join(c.Dir, "kubelet.kubeconfig"),
		"--hostname-override", NodeName, "--root-dir", filepath.Join(c.Dir, "kubelet"),
		"--cert-dir", filepath.Join(c.Dir, "kubelet", "pki"), "--v=1")
	return err
}

// kubeletConfig is the KubeletConfiguration of the node, with only the fields release v has.
func kubeletConfig(dir, sock string, v Version) string {
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%[2]s
imageServiceEndpoint: unix://%[2]s
address: 127.0.0.1
port: %[3]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
tlsCertFile: %[1]s/pki/kubelet.crt
tlsPrivateKeyFile: %[1]s/pki/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %[1]s/pki/ca.crt}
authorization:
  mode: AlwaysAllow
staticPodPath: ""
volumePluginDir: %[1]s/kubelet-plugins
podLogsDir: %[1]s/pod-logs
clusterDomain: cluster.local
clusterDNS: []
resolvConf: /etc/resolv.conf
failSwapOn: false
registerNode: true
serializeImagePulls: false
evictionHard: {memory.available: "100Mi", nodefs.available: "2%%", imagefs.available: "2%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusReportFrequency: 10s
shutdownGracePeriod: 0s
`, dir, sock, kubeletPort)
	for _, f := range kubeletExtraConfig {
		if v.AtLeast(f.since) {
			cfg += f.yaml + "\n"
		}
	}
	return cfg
}
