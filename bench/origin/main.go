// Command origin is the benchmark origin of edgeloop's load benchmarks: a
// small HTTP/1.1 server that must not be the bottleneck. It answers
//
//	ANY /bytes/N          N bytes (0 <= N <= 64 MiB) of text/plain (HEAD: headers only)
//	  ?cc=VALUE           with "Cache-Control: VALUE" (e.g. cc=max-age=60, cc=no-store)
//	  ?etag=1             with a strong ETag and Last-Modified; 304 to a matching If-None-Match
//	  ?status=CODE        with that status (200..599) instead of 200
//	  ?delay=DURATION     after sleeping DURATION (Go syntax, at most 10s)
//	GET /stats            "requests N" — requests answered so far (cache hit ratios)
//
// It speaks HTTP/1.1 keep-alive and pipelining by hand (no net/http): a
// request costs one read and one write system call in the common case, and
// responses to plain /bytes/N requests are built once and reused. Request
// bodies are read (Content-Length) and discarded; chunked request bodies get
// 501. Run it with GOMAXPROCS set and pinned with taskset; bench/run.sh pins it
// to the client CPU with GOMAXPROCS=1.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	maxBytes     = 64 << 20 // largest /bytes/N body
	maxDelay     = 10 * time.Second
	maxHeader    = 64 << 10  // request header block
	cacheableMax = 256 << 10 // responses up to this size are prebuilt and reused
)

var (
	errHeaderTooLarge = errors.New("request header too large")
	errBadRequest     = errors.New("malformed request")
)

// pattern is the body source: printable, so a body is readable in a log.
var pattern = bytes.Repeat([]byte("edgeloop origin payload 0123456789abcdefghijklmnopqrstuvwxyz\n"), 1<<10)

var (
	served   atomic.Int64
	date     atomic.Pointer[string]
	prebuilt sync.Map // path -> []byte, response of plain /bytes/N after its Date line
	modified = httpDate(time.Now())
)

func main() {
	addr := flag.String("listen", "127.0.0.1:18180", "listen address")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("origin: %v", err)
	}
	setDate()
	go func() {
		for range time.Tick(time.Second) {
			setDate()
		}
	}()
	fmt.Fprintf(os.Stderr, "origin: listening on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Printf("origin: accept: %v", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go serve(c)
	}
}

func setDate() {
	d := httpDate(time.Now())
	date.Store(&d)
}

// httpDate formats t as an RFC 9110 IMF-fixdate.
func httpDate(t time.Time) string { return t.UTC().Format("Mon, 02 Jan 2006 15:04:05") + " GMT" }

// request is the little of a request the origin needs.
type request struct {
	method, target string
	close          bool
	contentLength  int64
	chunked        bool
	ifNoneMatch    string
}

func serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 8<<10)
	w := bufio.NewWriterSize(c, 64<<10)
	for {
		req, err := readRequest(r)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				code := 400
				if errors.Is(err, errHeaderTooLarge) {
					code = 431
				}
				writeSimple(w, code, err.Error()+"\n", true)
				_ = w.Flush()
			}
			return
		}
		if req.chunked {
			writeSimple(w, 501, "chunked request bodies are not supported\n", true)
			_ = w.Flush()
			return
		}
		if req.contentLength > 0 {
			if _, err := io.CopyN(io.Discard, r, req.contentLength); err != nil {
				return
			}
		}
		served.Add(1)
		respond(w, req)
		// Flush once the pipeline is drained: one write per batch of requests.
		if r.Buffered() == 0 || req.close {
			if w.Flush() != nil {
				return
			}
		}
		if req.close {
			return
		}
	}
}

func readRequest(r *bufio.Reader) (*request, error) {
	line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1 {
		return nil, errBadRequest
	}
	req := &request{method: string(line[:sp1]), target: string(line[sp1+1 : sp2])}
	proto := string(line[sp2+1:])
	switch proto {
	case "HTTP/1.1":
	case "HTTP/1.0":
		req.close = true
	default:
		return nil, errBadRequest
	}
	total := len(line)
	for {
		h, err := readLine(r)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if total += len(h); total > maxHeader {
			return nil, errHeaderTooLarge
		}
		if len(h) == 0 {
			return req, nil
		}
		k, v, ok := bytes.Cut(h, []byte{':'})
		if !ok {
			return nil, errBadRequest
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || n < 0 {
				return nil, errBadRequest
			}
			req.contentLength = n
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			req.chunked = true
		case bytes.EqualFold(k, []byte("If-None-Match")):
			req.ifNoneMatch = string(v)
		case bytes.EqualFold(k, []byte("Connection")):
			if bytes.EqualFold(v, []byte("close")) {
				req.close = true
			} else if bytes.EqualFold(v, []byte("keep-alive")) {
				req.close = false
			}
		}
	}
}

// readLine returns one line without its CRLF; the slice is valid until the next read.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, errHeaderTooLarge
	}
	if err != nil {
		if len(line) == 0 {
			return nil, err
		}
		return nil, io.ErrUnexpectedEOF
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

func respond(w *bufio.Writer, req *request) {
	path, rawQuery, _ := bytes.Cut([]byte(req.target), []byte{'?'})
	switch {
	case string(path) == "/stats":
		writeSimple(w, 200, fmt.Sprintf("requests %d\n", served.Load()), req.close)
	case bytes.HasPrefix(path, []byte("/bytes/")):
		n, err := strconv.Atoi(string(path[len("/bytes/"):]))
		if err != nil || n < 0 || n > maxBytes {
			writeSimple(w, 400, fmt.Sprintf("want /bytes/N with 0 <= N <= %d\n", maxBytes), req.close)
			return
		}
		if len(rawQuery) == 0 && req.method == "GET" && !req.close && n <= cacheableMax {
			// The Date line is written fresh; the rest of the response is reused.
			key := string(path)
			rest, ok := prebuilt.Load(key)
			if !ok {
				var buf bytes.Buffer
				bw := bufio.NewWriter(&buf)
				writeBytes(bw, req, n, nil)
				_ = bw.Flush()
				b := buf.Bytes()
				rest, _ = prebuilt.LoadOrStore(key, b[bytes.Index(b, []byte("\r\nContent-Type:"))+2:])
			}
			_, _ = w.WriteString("HTTP/1.1 200 OK\r\nDate: ")
			_, _ = w.WriteString(*date.Load())
			_, _ = w.WriteString("\r\n")
			_, _ = w.Write(rest.([]byte))
			return
		}
		q, err := url.ParseQuery(string(rawQuery))
		if err != nil {
			writeSimple(w, 400, "bad query\n", req.close)
			return
		}
		writeBytes(w, req, n, q)
	default:
		writeSimple(w, 404, "not found: try /bytes/1024\n", req.close)
	}
}

// writeBytes writes the /bytes/N response with the options of query q (nil: none).
func writeBytes(w *bufio.Writer, req *request, n int, q url.Values) {
	status := 200
	var extra []string
	if q != nil {
		if s := q.Get("status"); s != "" {
			code, err := strconv.Atoi(s)
			if err != nil || code < 200 || code > 599 {
				writeSimple(w, 400, "status: want 200..599\n", req.close)
				return
			}
			status = code
		}
		if s := q.Get("delay"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 || d > maxDelay {
				writeSimple(w, 400, "delay: want a duration up to 10s\n", req.close)
				return
			}
			time.Sleep(d)
		}
		if cc := q.Get("cc"); cc != "" {
			if bytes.ContainsAny([]byte(cc), "\r\n") {
				writeSimple(w, 400, "cc: no line breaks\n", req.close)
				return
			}
			extra = append(extra, "Cache-Control: "+cc)
		}
		if q.Get("etag") == "1" {
			etag := fmt.Sprintf("\"bytes-%d\"", n)
			extra = append(extra, "ETag: "+etag, "Last-Modified: "+modified)
			if req.ifNoneMatch == etag && status == 200 {
				writeHead(w, 304, "", -1, req.close, extra)
				return
			}
		}
	}
	writeHead(w, status, "text/plain; charset=utf-8", n, req.close, extra)
	if req.method == "HEAD" {
		return
	}
	for n > 0 {
		k := min(n, len(pattern))
		_, _ = w.Write(pattern[:k])
		n -= k
	}
}

func writeSimple(w *bufio.Writer, status int, body string, close bool) {
	writeHead(w, status, "text/plain; charset=utf-8", len(body), close, nil)
	_, _ = w.WriteString(body)
}

func writeHead(w *bufio.Writer, status int, ctype string, n int, close bool, extra []string) {
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, statusText(status), *date.Load())
	if n >= 0 { // a 304 has neither (RFC 9110, section 15.4.5)
		fmt.Fprintf(w, "Content-Type: %s\r\nContent-Length: %d\r\n", ctype, n)
	}
	for _, h := range extra {
		_, _ = w.WriteString(h + "\r\n")
	}
	if close {
		_, _ = w.WriteString("Connection: close\r\n")
	}
	_, _ = w.WriteString("\r\n")
}

func statusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 304:
		return "Not Modified"
	case 400:
		return "Bad Request"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 431:
		return "Request Header Fields Too Large"
	case 501:
		return "Not Implemented"
	case 503:
		return "Service Unavailable"
	}
	return "Status"
}
