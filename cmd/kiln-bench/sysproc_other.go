//go:build !linux

package main

import "syscall"

// sysProcAttr: only Linux can tie a child's life to kiln-bench's.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
