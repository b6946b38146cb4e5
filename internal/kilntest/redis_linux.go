package kilntest

import "syscall"

// privateProcAttr kills the private redis-server when the test binary dies.
func privateProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
