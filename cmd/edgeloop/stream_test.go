package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rssKiB reads a process's resident set size.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// zeroReader yields n zero bytes without holding them.
type zeroReader struct{ left int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > z.left {
		p = p[:z.left]
	}
	clear(p)
	z.left -= int64(len(p))
	return len(p), nil
}

// TestStreamingMemory: a 1 GiB download and a 256 MiB upload through the
// proxy leave edgeloop's RSS within a few MiB of where it started.
func TestStreamingMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 1.25 GiB over loopback")
	}
	const down = 1 << 30
	const up = 256 << 20
	var received atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			n, _ := io.Copy(io.Discard, r.Body)
			received.Store(n)
			fmt.Fprint(w, n)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(down))
		_, _ = io.Copy(w, &zeroReader{left: down})
	})
	cfg := writeFile(t, "s.yaml", "limits:\n  max_body_size: 1GiB\ntimeouts:\n  read: 120s\n  write: 120s\n  request: 120s\n")
	p := start(t, "--config", cfg, "--upstream", o.URL)
	pid := p.cmd.Process.Pid
	c := &http.Client{Timeout: 120 * time.Second, Transport: &http.Transport{DisableCompression: true}}

	// Warm up pools and buffers, then take the baseline.
	resp, err := c.Get(p.url("/warm"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<20)
	resp.Body.Close()
	time.Sleep(200 * time.Millisecond)
	base := rssKiB(t, pid)

	peak := base
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if r := rssKiB(t, pid); r > peak {
					peak = r
				}
			}
		}
	}()
	resp, err = c.Get(p.url("/big"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != down {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	resp, err = c.Post(p.url("/upload"), "application/octet-stream", io.NopCloser(&zeroReader{left: up}))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	close(stop)
	<-sampled
	if resp.StatusCode != 200 || received.Load() != up {
		t.Fatalf("upload: %d %q, origin received %d", resp.StatusCode, body, received.Load())
	}
	growth := peak - base
	t.Logf("edgeloop RSS: base %d KiB, peak %d KiB, growth %d KiB over 1 GiB down + 256 MiB up", base, peak, growth)
	if growth > 8<<10 {
		t.Errorf("RSS grew by %d KiB while streaming; want at most 8 MiB", growth)
	}
}
