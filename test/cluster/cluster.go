// Package cluster starts a real one-node Kubernetes cluster for tests, on loopback only: etcd,
// kube-apiserver, kube-controller-manager, containerd and a kubelet that really runs pods from
// locally built images, with the scheduler and the controllers the tests need. Tools come from `make tools` (see test/tools/build.sh). Only one such
// node can run on a machine at a time (fixed host paths, port 10250); Start takes a lock.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vault-injector/vault-injector/internal/procstat"
)

// Versions of the tools, matching test/tools/build.sh (Kubernetes: see KubernetesVersion).
const (
	ContainerdVersion = "v2.4.2"
	NodeName          = "127.0.0.1"
	PauseImage        = "e2e.local/pause:1"
	// kubeletPort is fixed: the node advertises it and only one kubelet runs per machine.
	kubeletPort = 10250
)

// ToolsDir is where `make tools` puts its outputs.
func ToolsDir() string {
	if d := os.Getenv("VAULT_INJECTOR_CACHE"); d != "" {
		return filepath.Join(d, "tools")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "vault-injector", "tools")
}

// Tool returns the path of a built tool, or an error telling how to build it.
func Tool(dir, name string) (string, error) {
	p := filepath.Join(ToolsDir(), dir, "bin", name)
	if _, err := os.Stat(filepath.Join(ToolsDir(), dir, ".done")); err != nil {
		return "", fmt.Errorf("%s is not built (%s missing): run make tools (with %s=%s if that is the release wanted)", name, p, VersionEnv, os.Getenv(VersionEnv))
	}
	return p, nil
}

// schedulerDir is where the release's kube-scheduler is: built with the other servers, or, in
// caches from before that, in an entry of its own.
func schedulerDir(v Version) string {
	if _, err := os.Stat(filepath.Join(ToolsDir(), "kubernetes-"+v.String(), "bin", "kube-scheduler")); err == nil {
		return "kubernetes-" + v.String()
	}
	return "kube-scheduler-" + v.String()
}

// Cluster is a running stack.
type Cluster struct {
	Dir       string
	APIServer string // https://127.0.0.1:<port>
	CA        *CA
	Config    *rest.Config
	Client    kubernetes.Interface
	// AdminToken authenticates as a cluster admin (system:masters).
	AdminToken string
	// Version is the Kubernetes release of every server of the stack.
	Version Version
	// Timings and figures for the notes.
	ReadyAfter time.Duration

	procs     []*Process
	byName    map[string]*Process
	ctr       string
	sock      string
	lock      *os.File
	sysctls   map[string]string
	hostDirs  []string
	stopped   bool
	logOutput io.Writer
}

// Process is one server of the stack.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
}

// Options configure Start.
type Options struct {
	// Images are tarballs imported into containerd before the kubelet starts.
	Images []string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// LockFile guards the machine-wide resources of a node.
const LockFile = "/run/vault-injector-e2e.lock"

// Start brings the stack up and waits for the node to be Ready. On error everything started
// so far is stopped.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the test cluster needs root (kubelet, containerd, cgroups, mounts)")
	}
	version, err := KubernetesVersion()
	if err != nil {
		return nil, err
	}
	k8s := "kubernetes-" + version.String()
	bins := map[string]string{}
	for _, t := range [][2]string{
		{k8s, "kube-apiserver"}, {k8s, "kube-controller-manager"}, {k8s, "kubelet"},
		{schedulerDir(version), "kube-scheduler"},
		{"containerd-" + ContainerdVersion, "containerd"}, {"containerd-" + ContainerdVersion, "ctr"}, {"containerd-" + ContainerdVersion, "containerd-shim-runc-v2"},
	} {
		p, err := Tool(t[0], t[1])
		if err != nil {
			return nil, err
		}
		bins[t[1]] = p
	}
	for _, p := range []string{"/usr/bin/etcd", "/usr/sbin/runc", "/usr/lib/cni/bridge"} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s missing: run make tools (installs Debian's etcd-server, runc, containernetworking-plugins)", p)
		}
	}
	lock, err := os.OpenFile(LockFile, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("another test cluster holds %s (one node per machine): stop it first", LockFile)
	}
	dir, err := os.MkdirTemp("", "vault-injector-e2e-")
	if err != nil {
		return nil, err
	}
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	c = &Cluster{Dir: dir, Version: version, lock: lock, byName: map[string]*Process{}, ctr: bins["ctr"], logOutput: logw, sysctls: map[string]string{}}
	defer func() {
		if err != nil {
			c.DumpLogs(logw)
			c.Stop()
		}
	}()
	start := time.Now()
	c.progress("starting a one-node Kubernetes %s cluster in %s", version, dir)
	for _, d := range []string{"pki", "logs", "etcd", "containerd", "cni/net.d", "kubelet", "pod-logs", "kubelet-plugins"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	etcdPort, peerPort, apiPort, kcmPort, schedPort := freePort(), freePort(), freePort(), freePort(), freePort()
	c.APIServer = "https://127.0.0.1:" + apiPort
	if err := c.pki(); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}

	if _, err := c.start("etcd", "/usr/bin/etcd", "--name", "e2e", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "http://127.0.0.1:"+etcdPort, "--advertise-client-urls", "http://127.0.0.1:"+etcdPort,
		"--listen-peer-urls", "http://127.0.0.1:"+peerPort, "--initial-advertise-peer-urls", "http://127.0.0.1:"+peerPort,
		"--initial-cluster", "e2e=http://127.0.0.1:"+peerPort, "--listen-metrics-urls", "",
		"--quota-backend-bytes", "2147483648", "--unsafe-no-fsync"); err != nil {
		return nil, err
	}
	if err := waitTCP(ctx, "127.0.0.1:"+etcdPort, 20*time.Second); err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}

	p := filepath.Join(dir, "pki")
	if _, err := c.start("kube-apiserver", bins["kube-apiserver"],
		"--etcd-servers", "http://127.0.0.1:"+etcdPort,
		"--bind-address", "127.0.0.1", "--secure-port", apiPort,
		// Must not be loopback; nothing listens there and nothing dials it.
		"--advertise-address", "10.255.255.254", "--endpoint-reconciler-type", "none",
		"--service-cluster-ip-range", "10.96.0.0/24",
		"--tls-cert-file", p+"/apiserver.crt", "--tls-private-key-file", p+"/apiserver.key",
		"--client-ca-file", p+"/ca.crt",
		"--kubelet-client-certificate", p+"/kubelet-client.crt", "--kubelet-client-key", p+"/kubelet-client.key",
		"--token-auth-file", p+"/tokens.csv",
		"--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction,PodSecurity",
		"--service-account-issuer", ServiceAccountIssuer,
		"--service-account-key-file", p+"/sa.pub", "--service-account-signing-key-file", p+"/sa.key",
		"--allow-privileged=true", "--profiling=false"); err != nil {
		return nil, err
	}
	c.Config = &rest.Config{Host: c.APIServer, BearerToken: c.AdminToken, TLSClientConfig: rest.TLSClientConfig{CAData: c.CA.CertPEM}, QPS: 100, Burst: 200}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return nil, err
	}
	if err := c.waitAPIServer(ctx); err != nil {
		return nil, err
	}
	c.progress("kube-apiserver ready on %s (%s)", c.APIServer, time.Since(start).Round(10*time.Millisecond))

	if _, err := c.start("kube-controller-manager", bins["kube-controller-manager"],
		"--kubeconfig", filepath.Join(dir, "kcm.kubeconfig"),
		"--authentication-kubeconfig", filepath.Join(dir, "kcm.kubeconfig"), "--authorization-kubeconfig", filepath.Join(dir, "kcm.kubeconfig"),
		"--bind-address", "127.0.0.1", "--secure-port", kcmPort, "--leader-elect=false",
		"--controllers", "serviceaccount,serviceaccount-token,root-ca-cert-publisher,deployment,replicaset,job,cronjob,endpointslice,garbagecollector,namespace,ttl-after-finished",
		"--root-ca-file", p+"/ca.crt", "--use-service-account-credentials=false",
		// The token controller fills Secrets of type kubernetes.io/service-account-token: the
		// long-lived reviewer token that deploy/examples/vault-setup.sh gives Vault. It needs
		// the signing key, and up to 1.30 at least it must be named in --controllers (later
		// releases start it whenever the key is set).
		"--service-account-private-key-file", p+"/sa.key",
		"--concurrent-gc-syncs", "5"); err != nil {
		return nil, err
	}

	if _, err := c.start("kube-scheduler", bins["kube-scheduler"],
		"--kubeconfig", filepath.Join(dir, "kcm.kubeconfig"),
		"--authentication-kubeconfig", filepath.Join(dir, "kcm.kubeconfig"), "--authorization-kubeconfig", filepath.Join(dir, "kcm.kubeconfig"),
		"--bind-address", "127.0.0.1", "--secure-port", schedPort, "--leader-elect=false"); err != nil {
		return nil, err
	}

	if err := c.startContainerd(ctx, bins, opts.Images); err != nil {
		return nil, err
	}
	if err := c.startKubelet(ctx, bins["kubelet"]); err != nil {
		return nil, err
	}
	if err := c.waitNodeReady(ctx, 90*time.Second); err != nil {
		return nil, err
	}
	// No node-lifecycle controller runs, so nothing would lift the taints the node registers
	// with (node.kubernetes.io/not-ready); the node is Ready, so drop them.
	if n, err := c.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{}); err == nil && len(n.Spec.Taints) > 0 {
		n.Spec.Taints = nil
		if _, err := c.Client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			return nil, fmt.Errorf("untaint node: %w", err)
		}
	}
	c.ReadyAfter = time.Since(start)
	c.progress("node %s Ready %s after start", NodeName, c.ReadyAfter.Round(10*time.Millisecond))
	if err := c.waitDefaultServiceAccount(ctx, "default"); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) progress(format string, args ...any) {
	fmt.Fprintf(c.logOutput, "[cluster %s] %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (c *Cluster) pki() error {
	p := filepath.Join(c.Dir, "pki")
	ca, err := NewCA("vault-injector-e2e-ca")
	if err != nil {
		return err
	}
	c.CA = ca
	if err := os.WriteFile(p+"/ca.crt", ca.CertPEM, 0o644); err != nil {
		return err
	}
	if err := ca.Issue(p+"/apiserver.crt", p+"/apiserver.key", "kube-apiserver", nil, false,
		"127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"); err != nil {
		return err
	}
	if err := ca.Issue(p+"/kubelet-client.crt", p+"/kubelet-client.key", "kube-apiserver-kubelet-client", []string{"system:masters"}, true); err != nil {
		return err
	}
	if err := ca.Issue(p+"/kubelet.crt", p+"/kubelet.key", NodeName, nil, false, "127.0.0.1", "localhost"); err != nil {
		return err
	}
	if err := writeKeyPair(p+"/sa.key", p+"/sa.pub"); err != nil {
		return err
	}
	tok := func() string {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}
	admin, kubelet, kcm := tok(), tok(), tok()
	c.AdminToken = admin
	csv := fmt.Sprintf("%s,e2e-admin,e2e-admin,\"system:masters\"\n%s,system:node:%s,kubelet,\"system:nodes\"\n%s,system:kube-controller-manager,kcm,\"system:masters\"\n", admin, kubelet, NodeName, kcm)
	if err := os.WriteFile(p+"/tokens.csv", []byte(csv), 0o600); err != nil {
		return err
	}
	for name, token := range map[string]string{"admin": admin, "kubelet": kubelet, "kcm": kcm} {
		if err := os.WriteFile(filepath.Join(c.Dir, name+".kubeconfig"), []byte(c.kubeconfig(name, token)), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// AdminKubeconfig is a kubeconfig file for kubectl as a cluster admin (system:masters).
func (c *Cluster) AdminKubeconfig() string { return filepath.Join(c.Dir, "admin.kubeconfig") }

func (c *Cluster) kubeconfig(user, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "%s", certificate-authority: "%s/pki/ca.crt"}
users:
- name: %s
  user: {token: "%s"}
contexts:
- name: e2e
  context: {cluster: e2e, user: %s}
current-context: e2e
`, "https://127.0.0.1:"+c.apiPort(), c.Dir, user, token, user)
}

func (c *Cluster) apiPort() string {
	if c.APIServer == "" {
		return "0"
	}
	return c.APIServer[strings.LastIndex(c.APIServer, ":")+1:]
}

// start runs a server with its output in logs/<name>.log.
func (c *Cluster) start(name, bin string, args ...string) (*Process, error) {
	logPath := filepath.Join(c.Dir, "logs", name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	c.procs = append(c.procs, p)
	c.byName[name] = p
	return p, nil
}

// Process returns a server of the stack by name (etcd, kube-apiserver, ...).
func (c *Cluster) Process(name string) *Process { return c.byName[name] }

// RSS returns the resident memory of each server, in KiB.
func (c *Cluster) RSS() map[string]int {
	out := map[string]int{}
	for _, p := range c.procs {
		if c.running(p.Name) {
			out[p.Name], _ = procstat.Memory(p.Cmd.Process.Pid)
		}
	}
	return out
}

// DumpLogs writes the tail of every server log.
func (c *Cluster) DumpLogs(w io.Writer) {
	for _, p := range c.procs {
		fmt.Fprintf(w, "===== %s (%s) =====\n%s\n", p.Name, p.Log, tail(p.Log, 40))
	}
}

// PodLogsDir holds the containers' logs: <namespace>_<pod>_<uid>/<container>/<n>.log.
func (c *Cluster) PodLogsDir() string { return filepath.Join(c.Dir, "pod-logs") }

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
