package wshub

import (
	"encoding/json"
	"errors"
	"net"
	"testing"
)

func TestChannelOf(t *testing.T) {
	h, err := NewHub(Config{Route: "/ws/{channel}/feed", PingInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	f := func(path, want string, ok bool) {
		t.Helper()
		got, gotOK := h.channelOf(path)
		if got != want || gotOK != ok {
			t.Errorf("channelOf(%q) = %q, %v; want %q, %v", path, got, gotOK, want, ok)
		}
	}
	f("/ws/news/feed", "news", true)
	f("/ws//feed", "", false)
	f("/ws/a/b/feed", "", false)
	f("/ws/news", "", false)
	f("/other/news/feed", "", false)
}

func TestHasToken(t *testing.T) {
	f := func(v, tok string, want bool) {
		t.Helper()
		if got := hasToken([]byte(v), tok); got != want {
			t.Errorf("hasToken(%q, %q) = %v", v, tok, got)
		}
	}
	f("Upgrade", "upgrade", true)
	f("keep-alive, Upgrade", "upgrade", true)
	f("keep-alive", "upgrade", false)
	f("", "upgrade", false)
	f("upgrades", "upgrade", false)
}

func TestPublishResultJSON(t *testing.T) {
	for _, ch := range []string{"news", `q"uote\`, "ctl\x01", "ünï"} {
		var r struct {
			Channel   string
			Delivered int
		}
		if err := json.Unmarshal([]byte(PublishResult(ch, 7)), &r); err != nil || r.Channel != ch || r.Delivered != 7 {
			t.Errorf("PublishResult(%q): %+v, %v", ch, r, err)
		}
	}
}

// wrapped mimics the connection wrappers between hertz and the socket.
type wrapped struct{ net.Conn }
type hidden struct {
	n int
	c net.Conn
}

func (h *hidden) Read([]byte) (int, error) { return 0, nil }

// loopbackConn returns the client end of a loopback TCP connection,
// closed with the test.
func loopbackConn(t *testing.T) *net.TCPConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func TestFindTCPThroughWrappers(t *testing.T) {
	tcp := loopbackConn(t)
	if got := findTCP(&wrapped{Conn: &wrapped{Conn: tcp}}); got != tcp {
		t.Errorf("embedded wrappers: got %v", got)
	}
	if got := findTCP(&hidden{c: tcp}); got != tcp {
		t.Errorf("unexported field: got %v", got)
	}
	if got := findTCP(&hidden{}); got != nil {
		t.Errorf("no connection inside: got %v", got)
	}
}

// syncing wraps a connection and batches writes: SyncWrites must be called
// before anything is written on the socket under it.
type syncing struct {
	net.Conn
	synced int
	err    error
}

func (s *syncing) SyncWrites() error { s.synced++; return s.err }

func TestSyncWritesThroughWrappers(t *testing.T) {
	c := loopbackConn(t)
	inner := &syncing{Conn: c}
	if err := syncWrites(&hidden{c: &wrapped{Conn: inner}}); err != nil || inner.synced != 1 {
		t.Fatalf("syncWrites through wrappers: %v, synced %d times, want once", err, inner.synced)
	}
	inner.err = errors.New("peer gone")
	if err := syncWrites(&wrapped{Conn: inner}); !errors.Is(err, inner.err) {
		t.Fatalf("syncWrites error: %v, want the wrapper's", err)
	}
	if err := syncWrites(&wrapped{Conn: c}); err != nil {
		t.Fatalf("no batching wrapper: %v", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil || c.MaxConns != 100000 || c.MaxConnsPerIP != 100 || c.SendQueue != 256 ||
		c.SlowConsumer != Disconnect || c.MaxMessage != 64<<10 {
		t.Errorf("defaults: %+v, %v", c, err)
	}
	if _, err := (Config{SlowConsumer: "block"}).withDefaults(); err != ErrBadSlowConsumer {
		t.Errorf("bad policy: %v", err)
	}
}
