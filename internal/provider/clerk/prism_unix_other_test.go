//go:build unix && !linux

package clerk_test

import "syscall"

// dieWithTest does nothing where the kernel has no parent-death signal: Prism outlives a test
// process that dies without running its cleanups.
func dieWithTest(*syscall.SysProcAttr) {}
