package main

import "syscall"

// sysProcAttr has the kernel kill a child if kiln-bench itself dies, so an
// interrupted benchmark leaves no web, worker or redis-server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
