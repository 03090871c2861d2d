package handlers

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// pattern is a deterministic, non-repeating-per-block byte stream of n bytes.
type pattern struct{ off, n int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n-p.off {
		b = b[:p.n-p.off]
	}
	for i := range b {
		x := uint64(p.off + int64(i))
		b[i] = byte(x ^ x>>8 ^ x>>16 ^ x>>24)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func patternSum(n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, &pattern{n: n})
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// heapPeak samples live heap bytes until stop is closed and reports the peak.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

const streamSize = 256 << 20

func TestProxyStreamsLargeDownloadInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 256 MiB through the proxy")
	}
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if !chunked {
					w.Header().Set("Content-Length", strconv.Itoa(streamSize))
				}
				io.Copy(w, &pattern{n: streamSize})
			})
			_, addr := startProxy(t, ProxyConfig{Upstreams: []string{origin}})
			want := patternSum(streamSize)
			base := liveHeap()
			stop := make(chan struct{})
			peakc := heapPeak(stop)
			resp, err := http.Get("http://" + addr + "/big")
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			resp.Body.Close()
			close(stop)
			peak := <-peakc
			if err != nil || n != streamSize {
				t.Fatalf("read %d bytes, err %v", n, err)
			}
			if !chunked && resp.ContentLength != streamSize {
				t.Errorf("content-length %d, want %d", resp.ContentLength, streamSize)
			}
			var got [32]byte
			h.Sum(got[:0])
			if got != want {
				t.Fatal("body hash differs from the origin's")
			}
			growth := int64(peak) - int64(base)
			t.Logf("live heap base %d KiB, peak %d KiB, growth %d KiB for %d MiB", base>>10, peak>>10, growth>>10, streamSize>>20)
			if growth > 16<<20 {
				t.Fatalf("heap grew %d MiB while streaming %d MiB: the body was buffered", growth>>20, streamSize>>20)
			}
		})
	}
}

func TestProxyStreamsLargeUpload(t *testing.T) {
	const size = 64 << 20 // well above the server's 1 MiB in-memory body limit
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %x %v %q", n, h.Sum(nil), err, r.Header.Get("Transfer-Encoding"))
	})
	_, addr := startProxy(t, ProxyConfig{Upstreams: []string{origin}})
	sum := patternSum(size)
	for _, chunked := range []bool{false, true} {
		base := liveHeap()
		stop := make(chan struct{})
		peakc := heapPeak(stop)
		req, _ := http.NewRequest("POST", "http://"+addr+"/up", io.NopCloser(&pattern{n: size}))
		if !chunked {
			req.ContentLength = size
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		close(stop)
		growth := int64(<-peakc) - int64(base)
		want := fmt.Sprintf("%d %x <nil> %q", size, sum, "")
		if resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("chunked=%v: %d %q, want %q", chunked, resp.StatusCode, body, want)
		}
		t.Logf("chunked=%v: heap growth %d KiB for a %d MiB upload", chunked, growth>>10, size>>20)
		if growth > 16<<20 {
			t.Fatalf("heap grew %d MiB for a %d MiB upload", growth>>20, size>>20)
		}
	}
}

func TestProxyClientDisconnectMidDownloadReleasesConnection(t *testing.T) {
	var served atomic.Int32
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		n := int64(64 << 20)
		if r.URL.Path == "/small" {
			n = 10
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.Copy(w, &pattern{n: n})
	})
	p, addr := startProxy(t, ProxyConfig{Upstreams: []string{origin}})
	upName := origin[len("http://"):]
	goroutines := runtime.NumGoroutine()

	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
			t.Fatal(err)
		}
		c.Close() // gone mid-body
	}
	// The abandoned upstream connections must be closed, not drained or leaked.
	deadline := time.Now().Add(5 * time.Second)
	var st = p.Stats()[upName]
	for time.Now().Before(deadline) {
		if st = p.Stats()[upName]; st.Open == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.Open != 0 || st.Idle != 0 {
		t.Fatalf("after 3 abandoned downloads: %+v, want no open connection", st)
	}
	// The pool still works and keeps the connection idle after a full response.
	if resp, body := get(t, "http://"+addr+"/small"); resp.StatusCode != 200 || len(body) != 10 {
		t.Fatalf("after disconnects: %d %q", resp.StatusCode, body)
	}
	if st = p.Stats()[upName]; st.Open != 1 || st.Idle != 1 {
		t.Fatalf("after a complete response: %+v, want one open idle connection", st)
	}
	for time.Now().Before(deadline) && runtime.NumGoroutine() > goroutines+2 {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines+2 {
		t.Errorf("goroutines %d, were %d before the abandoned downloads", n, goroutines)
	}
}
