// Package trap gives tests a loopback listener that counts the connections made to it: the
// address a test names where nothing may go (a redirected agent, a proxy), to assert that
// nothing went there.
package trap

import (
	"net"
	"sync/atomic"
	"testing"
)

// Listener accepts and closes every connection, counting them.
type Listener struct {
	// Addr is host:port on 127.0.0.1.
	Addr  string
	conns atomic.Int32
}

// Connections is how many connections were accepted so far.
func (l *Listener) Connections() int { return int(l.conns.Load()) }

// Listen starts a Listener closed at the end of the test.
func Listen(t testing.TB) *Listener {
	t.Helper()
	nl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nl.Close() })
	l := &Listener{Addr: nl.Addr().String()}
	go func() {
		for {
			c, err := nl.Accept()
			if err != nil {
				return
			}
			l.conns.Add(1)
			c.Close()
		}
	}()
	return l
}
