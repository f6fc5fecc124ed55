package envstyle

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/vault-injector/vault-injector/agentconfig"
)

func TestDecide(t *testing.T) {
	cases := []struct {
		name     string
		kubelets map[string]string
		want     agentconfig.EnvStyle
		reason   string
	}{
		{"no nodes", nil, agentconfig.EnvStyleExec, "no nodes"},
		{"all new", map[string]string{"a": "v1.35.0", "b": "v1.37.2"}, agentconfig.EnvStyleFile, "all 2 nodes"},
		{"one old", map[string]string{"a": "v1.37.2", "b": "v1.34.9"}, agentconfig.EnvStyleExec, "node b runs kubelet v1.34.9"},
		{"pre-release of 1.35", map[string]string{"a": "v1.35.0-rc.1"}, agentconfig.EnvStyleFile, ""},
		{"vendor suffix", map[string]string{"a": "v1.36.3-eks-1234"}, agentconfig.EnvStyleFile, ""},
		{"unparsable", map[string]string{"a": "garbage"}, agentconfig.EnvStyleExec, "does not parse"},
	}
	for _, c := range cases {
		d := Decide(c.kubelets)
		if d.Style != c.want || !strings.Contains(d.Reason, c.reason) {
			t.Errorf("%s: Decide = %+v, want %s (%q)", c.name, d, c.want, c.reason)
		}
	}
}

// The watcher follows nodes joining: an old kubelet joining switches file to exec.
func TestWatchFollowsNodes(t *testing.T) {
	node := func(name, v string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: v}}}
	}
	client := fake.NewSimpleClientset(node("a", "v1.37.2"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan Decision, 4)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return client.CoreV1().Nodes().List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return client.CoreV1().Nodes().Watch(ctx, o)
		},
	}
	// The fake clientset says it cannot stream lists (WatchListClient); so says the wrapper.
	w, err := Watch(ctx, cache.ToListWatcherWithWatchListSemantics(lw, client), 5*time.Second, func(d Decision) { changes <- d })
	if err != nil {
		t.Fatal(err)
	}
	if w.Style() != agentconfig.EnvStyleFile {
		t.Fatalf("one 1.37 node: %+v", w.Current())
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, node("b", "v1.33.1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case d := <-changes:
			if d.Style != agentconfig.EnvStyleExec {
				continue // the initial list's own change, to file
			}
			if w.Style() != agentconfig.EnvStyleExec || !strings.Contains(d.Reason, "node b runs kubelet v1.33.1") {
				t.Fatalf("after an old node joined: %+v, current %+v", d, w.Current())
			}
			return
		case <-deadline:
			t.Fatalf("no change to exec seen after an old node joined: %+v", w.Current())
		}
	}
}
