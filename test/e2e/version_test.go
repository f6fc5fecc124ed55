//go:build e2e

package e2e

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vault-injector/vault-injector/test/cluster"
)

// The suite runs on the release KUBERNETES_VERSION names (make test: the newest and the oldest
// supported minor): the API server and the kubelet report it, so the scenarios' per-version
// expectations hold for the servers that really ran.
func TestClusterRunsRequestedVersion(t *testing.T) {
	want, err := cluster.KubernetesVersion()
	if err != nil {
		t.Fatal(err)
	}
	if env.c.Version != want {
		t.Errorf("cluster started as %s, %s asks for %s", env.c.Version, cluster.VersionEnv, want)
	}
	info, err := env.c.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if info.GitVersion != want.String() {
		t.Errorf("kube-apiserver reports %s, want %s", info.GitVersion, want)
	}
	node, err := env.c.Client.CoreV1().Nodes().Get(ctx, cluster.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := node.Status.NodeInfo.KubeletVersion; got != want.String() {
		t.Errorf("kubelet reports %s, want %s", got, want)
	}
	t.Logf("Kubernetes %s: kube-apiserver %s, kubelet %s", want, info.GitVersion, node.Status.NodeInfo.KubeletVersion)
}
