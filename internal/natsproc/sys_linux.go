package natsproc

import "syscall"

// sysProcAttr has the kernel kill a server when the process that started
// it dies, so that a test killed by its timeout leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
