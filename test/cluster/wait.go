package cluster

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func (c *Cluster) waitAPIServer(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver not ready after 60s: %v", err)
		}
		if p := c.byName["kube-apiserver"]; p != nil {
			select {
			case <-p.done:
				return fmt.Errorf("kube-apiserver exited: %s", tail(p.Log, 20))
			default:
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *Cluster) waitNodeReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err == nil {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not Ready after %s (%v); kubelet log:\n%s", NodeName, timeout, err, tail(c.byName["kubelet"].Log, 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *Cluster) waitDefaultServiceAccount(ctx context.Context, ns string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err1 := c.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		_, err2 := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		if err1 == nil && err2 == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s has no default service account / kube-root-ca.crt after 60s", ns)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// WaitNamespaceReady waits for the controllers to give ns its default service account and CA.
func (c *Cluster) WaitNamespaceReady(ctx context.Context, ns string) error {
	return c.waitDefaultServiceAccount(ctx, ns)
}

func waitTCP(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not listening after %s: %w", addr, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "0"
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// FreePort returns a free loopback port.
func FreePort() string { return freePort() }
