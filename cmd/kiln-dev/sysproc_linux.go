package main

import "syscall"

// sysProcAttr puts a child in its own process group (the terminal's Ctrl-C
// goes to kiln-dev, which stops children in order) and, on Linux, has the
// kernel send it its stop signal if kiln-dev itself dies, so a killed
// kiln-dev leaves no orphaned server holding a port.
func sysProcAttr(stop syscall.Signal, cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: stop, Credential: cred}
}
