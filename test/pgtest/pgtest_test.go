package pgtest

import (
	"context"
	"testing"
)

// TestStartConnect shows the harness gives a server that accepts the superuser's password
// over TCP and refuses a wrong one.
func TestStartConnect(t *testing.T) {
	s := StartT(t)
	ctx := context.Background()
	c, err := s.Connect(ctx, "postgres", Password)
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if err := c.QueryRow(ctx, "show server_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	t.Logf("PostgreSQL %s on port %d", v, s.Port)
	if _, err := s.Connect(ctx, "postgres", "wrong"); err == nil {
		t.Fatal("a wrong password was accepted: host auth must not be trust")
	}
}
