//go:build stagetime

package fairpoll

import (
	"testing"
	"time"
)

// TestStageTimes: with -tags stagetime a client connection's read knows
// when the kernel received its data, and the read, turn and answer stages
// are recorded in order.
func TestStageTimes(t *testing.T) {
	srv, cli := pairs(t, 1)
	r, w := NewReader(srv[0]), NewWriter(srv[0])
	TimeStages(r, w, true)
	buf := make([]byte, 64)
	// seen is the reader's stage as the read left it (the answer's write
	// hands the receive time on and clears it).
	var seen stage
	exchange := func() (sent int64) {
		sent = time.Now().UnixNano()
		if _, err := cli[0].Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(buf); err != nil {
			t.Fatal(err)
		}
		seen.arr, seen.readAt, seen.turnAt = r.st.arr, r.st.readAt, r.st.turnAt
		if _, err := w.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := cli[0].Read(buf); err != nil {
			t.Fatal(err)
		}
		return sent
	}
	// The kernel turns receive timestamps on shortly after the first socket
	// asks for them (net_enable_timestamp defers it to a worker).
	for i := 0; seen.arr == 0; i++ {
		if i == 200 {
			t.Fatal("no receive timestamp after 200 exchanges")
		}
		time.Sleep(time.Millisecond)
		exchange()
	}
	stClientWait.Snapshot()
	stClientServe.Snapshot()
	for i := range 20 {
		sent := exchange()
		st := &seen
		if st.arr < sent || st.arr > st.readAt || st.readAt > st.turnAt {
			t.Fatalf("exchange %d: sent %d, arrived %d, read %d, turn %d: out of order", i, sent, st.arr, st.readAt, st.turnAt)
		}
	}
	if _, n := stClientWait.Snapshot(0.5); n != 20 {
		t.Errorf("%d socket->read records, want 20", n)
	}
	if _, n := stClientServe.Snapshot(0.5); n != 20 {
		t.Errorf("%d turn->answer records, want 20", n)
	}
}
