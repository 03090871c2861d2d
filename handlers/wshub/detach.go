package wshub

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"reflect"
	"time"
	"unsafe"

	"github.com/cloudwego/hertz/pkg/network"
	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"
)

// detach takes the TCP socket under a connection hertz has hijacked and
// returns it as a new net.Conn on a duplicate descriptor, with any bytes
// hertz had already buffered past the request. When the hijack handler
// returns, hertz closes its descriptor, which releases hertz's goroutine,
// buffers and request context; the socket lives on through the duplicate
// (close(2) drops one reference; the kernel ends the connection only when
// the last descriptor goes).
//
// It returns nil when the socket cannot be reached: TLS (the TLS state
// lives in the wrapper) or a transport whose wrappers it does not know.
// The caller then serves on hertz's connection instead.
func detach(nc network.Conn) (net.Conn, error) {
	tcp := findTCP(nc)
	if tcp == nil {
		return nil, nil
	}
	// The upgrade response may still be on its way through a wrapper that
	// batches writes (engine's client connections with io_uring): the
	// frames written on the duplicate must follow it.
	if err := syncWrites(nc); err != nil {
		return nil, err
	}
	var pre []byte
	if n := nc.Len(); n > 0 {
		b, err := nc.Peek(n)
		if err != nil {
			return nil, err
		}
		pre = append([]byte(nil), b...)
	}
	ka, kaErr := getKeepAlive(tcp)
	f, err := tcp.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	// net.FileConn turns Go's 15 s TCP keepalive on for the socket, which
	// edgeloop leaves as the listener set it (tune.tcp_keepalive): probes
	// every 15 s to 100,000 idle WebSockets are load of their own, and
	// under a connection storm the kernel aborted sockets whose probes it
	// had dropped.
	if tc, ok := c.(*net.TCPConn); ok && kaErr == nil {
		_ = setKeepAlive(tc, ka)
	}
	if len(pre) > 0 {
		return &prefixConn{Conn: c, pre: pre}, nil
	}
	return c, nil
}

// keepAlive is a socket's TCP keepalive settings.
type keepAlive struct{ on, idle, intvl, cnt int }

func getKeepAlive(c *net.TCPConn) (keepAlive, error) {
	var ka keepAlive
	rc, err := c.SyscallConn()
	if err != nil {
		return ka, err
	}
	var gerr error
	err = rc.Control(func(fd uintptr) {
		get := func(level, opt int) int {
			v, err := unix.GetsockoptInt(int(fd), level, opt)
			if err != nil && gerr == nil {
				gerr = err
			}
			return v
		}
		ka = keepAlive{
			on:    get(unix.SOL_SOCKET, unix.SO_KEEPALIVE),
			idle:  get(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE),
			intvl: get(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL),
			cnt:   get(unix.IPPROTO_TCP, unix.TCP_KEEPCNT),
		}
	})
	if err == nil {
		err = gerr
	}
	return ka, err
}

func setKeepAlive(c *net.TCPConn, ka keepAlive) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		set := func(level, opt, v int) {
			if err := unix.SetsockoptInt(int(fd), level, opt, v); err != nil && serr == nil {
				serr = err
			}
		}
		set(unix.SOL_SOCKET, unix.SO_KEEPALIVE, ka.on)
		if ka.on != 0 {
			set(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, ka.idle)
			set(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, ka.intvl)
			set(unix.IPPROTO_TCP, unix.TCP_KEEPCNT, ka.cnt)
		}
	})
	if err == nil {
		err = serr
	}
	return err
}

var (
	netConnType = reflect.TypeFor[net.Conn]()
	tcpConnType = reflect.TypeFor[*net.TCPConn]()
)

// syncWrites waits for the batched writes of the wrappers between v and
// its *net.TCPConn that batch them (a SyncWrites method).
func syncWrites(v any) error {
	var err error
	walkConns(v, func(x any) {
		if s, ok := x.(interface{ SyncWrites() error }); ok && err == nil {
			err = s.SyncWrites()
		}
	})
	return err
}

// findTCP returns the *net.TCPConn under the wrappers of v, or nil.
func findTCP(v any) *net.TCPConn {
	var tcp *net.TCPConn
	walkConns(v, func(x any) {
		if c, ok := x.(*net.TCPConn); ok {
			tcp = c
		}
	})
	return tcp
}

// walkConns unwraps the chain of connection wrappers (hertz's hijackConn and
// standard.Conn, edgeloop's tracking and limiting conns) down to the
// *net.TCPConn. hertz keeps the inner connection in unexported fields with
// no accessor, so they are read by reflection. visit sees each wrapper and
// the *net.TCPConn last; the walk stops at TLS, which has no plain socket.
func walkConns(v any, visit func(any)) {
	for range 8 {
		visit(v)
		switch x := v.(type) {
		case *net.TCPConn:
			return
		case *tls.Conn, interface{ ConnectionState() tls.ConnectionState }:
			return
		case interface{ NetConn() net.Conn }:
			v = x.NetConn()
			continue
		}
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
			return
		}
		ev := rv.Elem()
		var next any
		for i := range ev.NumField() {
			f := ev.Field(i)
			t := f.Type()
			if (t.Kind() == reflect.Interface && t.Implements(netConnType)) || t == tcpConnType {
				next = reflect.NewAt(t, unsafe.Pointer(f.UnsafeAddr())).Elem().Interface()
				break
			}
		}
		if next == nil {
			return
		}
		v = next
	}
}

// prefixConn replays bytes read ahead by hertz before reading the socket.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// handshake holds what the upgrade needs from the request, copied out of
// hertz's request context before it is recycled.
type handshake struct {
	key, protocol string
}

// upgrader writes the 101 response and builds the connection. Compression
// is off: per-message deflate would cost a compressor per connection.
var upgrader = websocket.Upgrader{
	HandshakeTimeout: 5 * time.Second,
	ReadBufferSize:   readBufferSize,
	WriteBufferSize:  writeBufferSize,
	WriteBufferPool:  &writePool,
	CheckOrigin:      func(*http.Request) bool { return true }, // checked before the hijack
}

// writePool shares write buffers among connections: an idle connection
// holds none.
var writePool poolAdapter

// accept completes the WebSocket handshake on a detached (or hijacked)
// connection: it writes the 101 response itself, since hertz wrote nothing.
func accept(conn net.Conn, hs handshake) (*websocket.Conn, error) {
	h := http.Header{
		"Connection":            {"Upgrade"},
		"Upgrade":               {"websocket"},
		"Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key":     {hs.key},
	}
	var resp http.Header
	if hs.protocol != "" {
		resp = http.Header{"Sec-Websocket-Protocol": {hs.protocol}}
		h["Sec-Websocket-Protocol"] = []string{hs.protocol}
	}
	r := &http.Request{Method: http.MethodGet, Header: h}
	w := &hijacked{conn: conn}
	ws, err := upgrader.Upgrade(w, r, resp)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return ws, nil
}

// hijacked hands gorilla/websocket's Upgrader a connection that is already
// hijacked. Its response methods discard: errors are answered by hertz
// before the hijack.
type hijacked struct {
	conn net.Conn
	hdr  http.Header
}

func (h *hijacked) Header() http.Header {
	if h.hdr == nil {
		h.hdr = http.Header{}
	}
	return h.hdr
}
func (h *hijacked) Write(p []byte) (int, error) { return len(p), nil }
func (h *hijacked) WriteHeader(int)             {}
func (h *hijacked) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	// Minimal buffers: the Upgrader only checks they hold nothing and
	// measures them; the connection gets its own reader.
	return h.conn, bufio.NewReadWriter(bufio.NewReaderSize(eofReader{}, 16), bufio.NewWriterSize(io.Discard, 16)), nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// noWriter is set as hertz's hijack writer so that hertz writes no
// response: the 101 is written on the detached socket.
type noWriter struct{}

func (noWriter) Write(p []byte) (int, error) { return len(p), nil }
func (noWriter) Flush() error                { return nil }
func (noWriter) Finalize() error             { return nil }
