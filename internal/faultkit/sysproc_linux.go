package faultkit

import "syscall"

// SysProcAttr has the kernel kill a child when the process that started it
// dies, so an interrupted test or chaos run leaves no redis-server, web or
// worker behind.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
