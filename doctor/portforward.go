package doctor

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// PortForwardDialer reaches pods the way `kubectl port-forward` does: through the API server
// and the kubelet, to a loopback port on this machine, so doctor works from a laptop that
// cannot route to pod IPs.
type PortForwardDialer struct {
	Config *rest.Config
}

// DialPod opens a port-forward to the pod's port and connects to it; closing the connection
// ends the forward.
func (d PortForwardDialer) DialPod(ctx context.Context, pod *corev1.Pod, port int32) (net.Conn, error) {
	transport, upgrader, err := spdy.RoundTripperFor(d.Config)
	if err != nil {
		return nil, err
	}
	u, err := portForwardURL(d.Config, pod)
	if err != nil {
		return nil, err
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(int(port))}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		return nil, fmt.Errorf("port-forward to %s/%s:%d: %w", pod.Namespace, pod.Name, port, err)
	case <-ctx.Done():
		close(stop)
		return nil, ctx.Err()
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		close(stop)
		return nil, fmt.Errorf("port-forward to %s/%s:%d: no local port (%v)", pod.Namespace, pod.Name, port, err)
	}
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(ports[0].Local))))
	if err != nil {
		close(stop)
		return nil, err
	}
	return &forwardedConn{Conn: conn, stop: stop}, nil
}

// DialAddr connects to a webhook called by URL.
func (d PortForwardDialer) DialAddr(ctx context.Context, addr string) (net.Conn, error) {
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", addr)
}

// portForwardURL is the pod's portforward subresource on the API server.
func portForwardURL(cfg *rest.Config, pod *corev1.Pod) (*neturl.URL, error) {
	rc, err := restClient(cfg)
	if err != nil {
		return nil, err
	}
	return rc.Post().AbsPath(apiPath(resPods, pod.Namespace, pod.Name), "portforward").URL(), nil
}

type forwardedConn struct {
	net.Conn
	once sync.Once
	stop chan struct{}
}

func (c *forwardedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.stop) })
	return err
}
