package clerk_test

import "syscall"

// dieWithTest makes the kernel kill Prism when the test process dies without running its
// cleanups (a panic, go test's -timeout).
func dieWithTest(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
