//go:build scale

package scale

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// certWatch records the serving certificates each replica presents and the CAs in caBundle,
// polled every 200 ms until stopped.
type certWatch struct {
	stop, done chan struct{}
	mu         sync.Mutex
	leaves     map[string]map[string]bool // shard -> fingerprints served
	cas        map[string]bool
}

func (r *replicas) watchCerts() *certWatch {
	w := &certWatch{stop: make(chan struct{}), done: make(chan struct{}), leaves: map[string]map[string]bool{}, cas: map[string]bool{}}
	for _, rep := range r.list {
		w.leaves[rep.shard] = map[string]bool{}
	}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, rep := range r.list {
				if der := served(rep.port); der != nil {
					w.mu.Lock()
					w.leaves[rep.shard][fingerprint(der)] = true
					w.mu.Unlock()
				}
			}
			if m, err := node.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, r.webhookConfig, metav1.GetOptions{}); err == nil {
				for _, h := range m.Webhooks {
					for _, der := range pemBlocks(h.ClientConfig.CABundle) {
						w.mu.Lock()
						w.cas[fingerprint(der)] = true
						w.mu.Unlock()
					}
				}
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// finish stops the polling and returns how many distinct serving certificates each replica
// presented and how many CAs caBundle held.
func (w *certWatch) finish() (leaves map[string]int, cas int) {
	close(w.stop)
	<-w.done
	leaves = map[string]int{}
	for shard, seen := range w.leaves {
		leaves[shard] = len(seen)
	}
	return leaves, len(w.cas)
}

// served is the DER of the certificate a replica presents now, nil if it does not answer.
func served(port string) []byte {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", "127.0.0.1:"+port, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw
}

func pemBlocks(b []byte) [][]byte {
	var out [][]byte
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return out
		}
		if _, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, block.Bytes)
		}
	}
}

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8])
}
