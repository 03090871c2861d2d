package fairpoll

import (
	"syscall"
	"unsafe"

	"github.com/edgeloop/edgeloop/internal/stagetime"
)

// Stage timing (built with -tags stagetime only; see internal/stagetime).
// A connection's Reader and Writer share a stage: the Reader notes when
// the kernel received the data of its last read (SO_TIMESTAMPNS) and when
// the read returned, the Writer records against those when it writes.

var (
	stClientWait  = stagetime.New("1 client: in socket->read")
	stClientTurn  = stagetime.New("2 client: read->turn")
	stClientServe = stagetime.New("3 client: turn->answer out")
	stOrigin      = stagetime.New("4 upstream: request->answer")
	stUpWait      = stagetime.New("5 upstream: in socket->read")
	stUpTurn      = stagetime.New("6 upstream: read->turn")
	stInServer    = stagetime.New("8 in server (write(2))")
)

// stage is one connection's part in stage timing.
type stage struct {
	client bool
	arr    int64 // kernel receive time of the last read's data (0: none)
	readAt int64 // when the last read returned
	turnAt int64 // when its reader's turn in arrival order came
	sentQ  int64 // upstream: when the request was handed to the Writer

	msg syscall.Msghdr
	iov syscall.Iovec
	oob [64]byte
}

// TimeStages makes r and w (the same connection's; either may be nil)
// record the stages of each exchange, as a client connection or an
// upstream one. It does nothing unless built with -tags stagetime.
func TimeStages(r *Reader, w *Writer, client bool) {
	if !stagetime.Enabled {
		return
	}
	st := &stage{client: client}
	if r != nil {
		r.st = st
		_ = r.rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
		})
	}
	if w != nil {
		w.st = st
	}
}

// recv is read(2) through recvmsg(2), keeping the kernel's receive time.
func (st *stage) recv(fd int, p []byte) (int, syscall.Errno) {
	st.arr = 0
	st.iov.Base = &p[0]
	st.iov.SetLen(len(p))
	st.msg.Iov = &st.iov
	st.msg.Iovlen = 1
	st.msg.Control = &st.oob[0]
	st.msg.SetControllen(len(st.oob))
	n, _, e := syscall.RawSyscall(syscall.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&st.msg)), 0)
	if e == 0 && int(n) > 0 {
		st.arr = receiveTime(st.oob[:st.msg.Controllen])
	}
	return int(n), e
}

// receiveTime finds the SO_TIMESTAMPNS message among the control messages
// in oob and returns its time, or 0. It walks them in place: parsing with
// syscall.ParseSocketControlMessage would allocate on every read and make
// work for the collector whose effect on latency is being measured.
func receiveTime(oob []byte) int64 {
	const hdr = syscall.SizeofCmsghdr
	for len(oob) >= hdr {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < hdr || int(h.Len) > len(oob) {
			return 0
		}
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SO_TIMESTAMPNS &&
			int(h.Len)-hdr >= int(unsafe.Sizeof(syscall.Timespec{})) {
			return (*syscall.Timespec)(unsafe.Pointer(&oob[hdr])).Nano()
		}
		next := syscall.CmsgSpace(int(h.Len) - hdr)
		if next > len(oob) {
			return 0
		}
		oob = oob[next:]
	}
	return 0
}

// afterRead records the stages that end with a read.
func (st *stage) afterRead() {
	st.readAt = stagetime.Now()
	if st.arr == 0 {
		return
	}
	if st.client {
		stClientWait.Rec(st.readAt - st.arr)
		return
	}
	stUpWait.Rec(st.readAt - st.arr)
	if st.sentQ != 0 {
		stOrigin.Rec(st.arr - st.sentQ)
		st.sentQ = 0
	}
}

// afterTurn records the wait between the read and the reader's turn in
// arrival order (none for a read that did not join a batch).
func (st *stage) afterTurn() {
	st.turnAt = stagetime.Now()
	if st.client {
		stClientTurn.Rec(st.turnAt - st.readAt)
	} else {
		stUpTurn.Rec(st.turnAt - st.readAt)
	}
}

// beforeWrite records the stages that end when a write is handed over and
// returns the receive time of the request it answers (client connections)
// for the ring to time the rest, or 0. Only an answer's first write counts:
// the rest of a response written in several pieces is not timed again.
func (st *stage) beforeWrite() int64 {
	now := stagetime.Now()
	if !st.client {
		st.sentQ = now
		return 0
	}
	if st.turnAt != 0 {
		stClientServe.Rec(now - st.turnAt)
		st.turnAt = 0
	}
	arr := st.arr
	st.arr = 0
	return arr
}
