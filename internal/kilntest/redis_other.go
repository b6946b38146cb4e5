//go:build !linux

package kilntest

import "syscall"

// privateProcAttr: without a parent-death signal the private redis-server
// outlives a crashed test binary (it listens on loopback only and keeps
// nothing on disk).
func privateProcAttr() *syscall.SysProcAttr { return nil }
