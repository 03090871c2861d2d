//go:build unix

package limit

import "syscall"

// lingerZero sets SO_LINGER with a zero timeout on the socket fd, so that
// its close sends an RST (socket(7)).
func lingerZero(fd int) error {
	return syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
}
