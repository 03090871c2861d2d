package tune

import (
	"encoding/binary"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// listenQueue reads a listener's accept queue (current length, maximum)
// from the kernel with NETLINK_SOCK_DIAG, the interface ss(8) uses: for a
// listening socket inet_diag_msg.idiag_rqueue is sk_ack_backlog and
// idiag_wqueue is sk_max_ack_backlog, the value listen(2) was given.
func listenQueue(t *testing.T, port int) (cur, max int) {
	t.Helper()
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	req := make([]byte, 16+56) // nlmsghdr + inet_diag_req_v2
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], 1)
	req[16] = unix.AF_INET
	req[17] = unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(req[20:], 1<<10) // TCP_LISTEN
	if err := unix.Sendto(s, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	for range 1000 {
		n, _, err := unix.Recvfrom(s, buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				t.Fatalf("no listener on port %d in sock_diag", port)
			case unix.NLMSG_ERROR:
				t.Fatal("sock_diag error")
			}
			d := m.Data
			if len(d) >= 64 && int(binary.BigEndian.Uint16(d[4:])) == port {
				return int(binary.NativeEndian.Uint32(d[56:])), int(binary.NativeEndian.Uint32(d[60:]))
			}
		}
	}
	t.Fatal("sock_diag dump did not end")
	return 0, 0
}
