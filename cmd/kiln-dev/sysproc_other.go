//go:build unix && !linux

package main

import "syscall"

// sysProcAttr puts a child in its own process group, so the terminal's
// Ctrl-C goes to kiln-dev, which stops children in order. (Only Linux can
// also tie a child's life to kiln-dev's.)
func sysProcAttr(_ syscall.Signal, cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}
