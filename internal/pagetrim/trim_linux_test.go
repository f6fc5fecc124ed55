package pagetrim

import (
	"debug/elf"
	"testing"
)

// The test binary may be dynamically linked (cgo): trimming must then refuse rather than drop
// pages the loader relocated; statically linked, it must release something and keep running.
func TestStartupPages(t *testing.T) {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	dynamic := false
	for _, p := range f.Progs {
		dynamic = dynamic || p.Type == elf.PT_DYNAMIC || p.Type == elf.PT_INTERP
	}
	f.Close()
	n, err := StartupPages()
	if dynamic {
		if err == nil {
			t.Fatal("trimmed a dynamically linked binary")
		}
		return
	}
	if err != nil || n == 0 {
		t.Fatalf("trimmed %d bytes: %v", n, err)
	}
	// Still alive and able to run code that was paged out.
	if _, err := elf.Open("/proc/self/exe"); err != nil {
		t.Fatal(err)
	}
}
