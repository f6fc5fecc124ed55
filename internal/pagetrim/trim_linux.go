// Package pagetrim lets a long-running process give back the pages of its own executable that
// start-up touched: the agent after its first render, the webhook once it serves.
package pagetrim

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// StartupPages lets the kernel drop the read-only pages of our own executable (code,
// read-only data) from the process's resident set once start-up is over. Start-up touches code
// it will never run again (package initialisers of every linked library, flag parsing, the
// agent's login and first render), which the kernel's fault-around inflates further. The pages are clean and backed by
// the binary, so anything still needed faults back in from the page cache; MADV_RANDOM keeps
// those faults to the page needed. Writable mappings (data, heap) are never touched.
func StartupPages() (int, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	// A dynamically linked build (cgo) has read-only pages the loader wrote (RELRO):
	// dropping those would bring back the unrelocated bytes from the file. The product is
	// built static; anything else is left alone.
	if f, err := elf.Open("/proc/self/exe"); err != nil {
		return 0, err
	} else {
		dynamic := false
		for _, p := range f.Progs {
			dynamic = dynamic || p.Type == elf.PT_DYNAMIC || p.Type == elf.PT_INTERP
		}
		f.Close()
		if dynamic {
			return 0, fmt.Errorf("%s is dynamically linked", exe)
		}
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	trimmed := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 00400000-00d51000 r-xp 00000000 08:01 1234 /path/to/binary
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		var start, end uintptr
		if _, err := fmt.Sscanf(fields[0], "%x-%x", &start, &end); err != nil || end <= start {
			continue
		}
		for _, advice := range []uintptr{syscall.MADV_RANDOM, syscall.MADV_DONTNEED} {
			if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, start, end-start, advice); e != 0 {
				return trimmed, fmt.Errorf("madvise %s: %w", fields[0], e)
			}
		}
		trimmed += int(end - start)
	}
	return trimmed, sc.Err()
}
