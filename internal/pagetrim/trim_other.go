//go:build !linux

package pagetrim

// StartupPages does nothing off Linux.
func StartupPages() (int, error) { return 0, nil }
