package engine

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/cloudwego/hertz/pkg/protocol"

	"github.com/edgeloop/edgeloop/internal/fairpoll"
)

// recWriter is hertz's buffered connection writer as bodyWriter sees it,
// writing what it is given to the socket on Flush and counting calls.
type recWriter struct {
	c       net.Conn
	buf     bytes.Buffer
	binary  int // WriteBinary/Malloc calls
	flushes int
}

func (w *recWriter) Malloc(n int) ([]byte, error) {
	w.binary++
	w.buf.Grow(n)
	b := w.buf.AvailableBuffer()[:n]
	w.buf.Write(b)
	return w.buf.Bytes()[w.buf.Len()-n:], nil
}

func (w *recWriter) WriteBinary(b []byte) (int, error) { w.binary++; return w.buf.Write(b) }

func (w *recWriter) Flush() error {
	w.flushes++
	_, err := w.c.Write(w.buf.Bytes())
	w.buf.Reset()
	return err
}

// tcpPair returns a trackedConn around the server end of a loopback TCP
// connection, and the client end.
func tcpPair(t *testing.T) (*trackedConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close(); srv.Close() })
	return &trackedConn{Conn: srv, writeTimeout: 5 * time.Second, fw: fairpoll.NewWriter(srv)}, cli
}

func readResponse(t *testing.T, c net.Conn, method string) (*http.Response, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestBodyWriterWritev(t *testing.T) {
	tc, cli := tcpPair(t)
	if tc.fw == nil {
		t.Fatal("no writev writer for a TCP connection")
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	var resp protocol.Response
	resp.Header.Set("X-Test", "1")
	resp.SetBodyRaw(body)
	zw := &recWriter{c: tc.Conn}
	w := &tc.bw
	w.tc, w.resp, w.zw = tc, &resp, zw
	resp.HijackWriter(w)
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	if err := w.Finalize(); err != nil { // hertz may call it again
		t.Fatal(err)
	}
	if zw.binary != 0 {
		t.Errorf("hertz's writer was given %d buffers; header and body should go out by writev", zw.binary)
	}
	got, b := readResponse(t, cli, "GET")
	if got.StatusCode != 200 || got.Header.Get("X-Test") != "1" || !bytes.Equal(b, body) {
		t.Fatalf("response: %d, X-Test %q, %d bytes", got.StatusCode, got.Header.Get("X-Test"), len(b))
	}
	if !tc.served.Load() {
		t.Error("connection not marked served")
	}
}

func TestBodyWriterFallsBack(t *testing.T) {
	tc, cli := tcpPair(t)
	body := bytes.Repeat([]byte("x"), 32<<10)
	var resp protocol.Response
	resp.SetBodyRaw(body)
	resp.SkipBody = true // HEAD, decided by hertz after the handlers
	zw := &recWriter{c: tc.Conn}
	w := &tc.bw
	w.tc, w.resp, w.zw, w.done = tc, &resp, zw, false
	resp.HijackWriter(w)
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	if zw.binary == 0 {
		t.Fatal("a HEAD response should be written by hertz's own writer")
	}
	if resp.GetHijackWriter() != nil {
		t.Error("the hijack writer stays set after the fallback")
	}
	if err := zw.Flush(); err != nil {
		t.Fatal(err)
	}
	got, b := readResponse(t, cli, "HEAD")
	if got.StatusCode != 200 || got.ContentLength != int64(len(body)) || len(b) != 0 {
		t.Fatalf("HEAD response: %d, Content-Length %d, %d body bytes", got.StatusCode, got.ContentLength, len(b))
	}
}

func TestBodyWriterFlushesFirst(t *testing.T) {
	// A pipelined small response still in hertz's buffer goes out before
	// the large one.
	tc, cli := tcpPair(t)
	zw := &recWriter{c: tc.Conn}
	zw.buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsmall")
	body := bytes.Repeat([]byte("y"), 20<<10)
	var resp protocol.Response
	resp.SetBodyRaw(body)
	w := &tc.bw
	w.tc, w.resp, w.zw, w.done = tc, &resp, zw, false
	if tc.fw == nil {
		t.Fatal("no writev writer")
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(cli)
	for i, want := range [][]byte{[]byte("small"), body} {
		r, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, _ := io.ReadAll(r.Body)
		if !bytes.Equal(b, want) {
			t.Fatalf("response %d: %d bytes, want %d", i, len(b), len(want))
		}
	}
}
