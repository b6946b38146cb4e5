//go:build !linux

package faultkit

import "syscall"

// SysProcAttr is nil where the kernel cannot kill orphans for us.
func SysProcAttr() *syscall.SysProcAttr { return nil }
