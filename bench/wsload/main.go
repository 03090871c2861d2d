// Command wsload is edgeloop's WebSocket load client (bench/ws.sh runs it).
//
//	wsload clients -url ws://127.0.0.1:18190/ws/bench -conns 5000 -src 127.0.1.1 -out lat.txt -wait 60s
//	    opens -conns idle subscriptions from source address -src, prints "ready N",
//	    then waits for one broadcast on every connection (at most -wait) and writes
//	    each connection's publish-to-receive latency in microseconds to -out.
//	wsload publish -admin http://127.0.0.1:18191 -channel bench
//	    publishes one message carrying the publish time; prints the delivered count.
//	wsload stats -admin http://127.0.0.1:18191 -pid PID [-base-rss KiB] [-conns N]
//	    prints the server's RSS and goroutines, and per connection when -conns is set.
//	wsload report lat1.txt lat2.txt ...
//	    prints count, p50, p99 and max of the latencies.
//
// Every mode is bounded in time; traffic goes only to the given loopback URLs.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: wsload clients|publish|stats|report [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "clients":
		err = runClients(os.Args[2:])
	case "publish":
		err = runPublish(os.Args[2:])
	case "stats":
		err = runStats(os.Args[2:])
	case "report":
		err = runReport(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsload:", err)
		os.Exit(1)
	}
}

func runClients(args []string) error {
	fs := flag.NewFlagSet("clients", flag.ExitOnError)
	url := fs.String("url", "", "ws:// URL of the pub/sub channel")
	n := fs.Int("conns", 1000, "connections to open")
	src := fs.String("src", "", "source address (127.x) to dial from")
	out := fs.String("out", "", "file for the latencies (µs)")
	wait := fs.Duration("wait", 60*time.Second, "longest time to wait for the broadcast after connecting")
	par := fs.Int("parallel", 32, "concurrent dials")
	_ = fs.Parse(args)
	if *url == "" || *out == "" {
		return errors.New("clients: -url and -out are required")
	}
	// No TCP keepalive, as browsers have it: 100,000 sockets probing every
	// 15 s (Go's default) is load of its own.
	nd := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1}
	if *src != "" {
		nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(*src)}
	}
	d := websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: 10 * time.Second,
		ReadBufferSize: 256, WriteBufferSize: 256}
	conns := make([]*websocket.Conn, *n)
	var failed atomic.Int64
	var firstErr atomic.Value
	next := atomic.Int64{}
	var wg sync.WaitGroup
	connectBy := time.Now().Add(*wait)
	for range *par {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= *n || time.Now().After(connectBy) {
					return
				}
				c, _, err := d.Dial(*url, nil)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	fmt.Printf("ready %d failed %d", int64(*n)-failed.Load(), failed.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Printf(" (first error: %s)", e)
	}
	fmt.Println()

	lat := make([]int64, 0, *n)
	var mu sync.Mutex
	deadline := time.Now().Add(*wait)
	for _, c := range conns {
		if c == nil {
			continue
		}
		// Connections stay open until every reader is done: closing each
		// one as its message arrives would make the server process a
		// close storm while it is still writing the broadcast.
		wg.Go(func() {
			_ = c.SetReadDeadline(deadline)
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			at := time.Now().UnixNano()
			sent, err := strconv.ParseInt(strings.TrimPrefix(string(msg), "t"), 10, 64)
			if err != nil {
				return
			}
			mu.Lock()
			lat = append(lat, (at-sent)/1000)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, v := range lat {
		fmt.Fprintln(w, v)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Printf("received %d\n", len(lat))
	return f.Close()
}

func runPublish(args []string) error {
	fs := flag.NewFlagSet("publish", flag.ExitOnError)
	admin := fs.String("admin", "", "edgeloop admin base URL")
	ch := fs.String("channel", "bench", "channel")
	_ = fs.Parse(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := "t" + strconv.FormatInt(time.Now().UnixNano(), 10)
	req, _ := http.NewRequestWithContext(ctx, "POST", *admin+"/publish/"+*ch, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Print(string(b))
	return nil
}

func runStats(args []string) error {
	fs := flag.NewFlagSet("stats", flag.ExitOnError)
	admin := fs.String("admin", "", "edgeloop admin base URL")
	pid := fs.Int("pid", 0, "edgeloop's pid")
	base := fs.Int64("base-rss", 0, "RSS (KiB) before the connections, subtracted for the per-connection figure")
	conns := fs.Int("conns", 0, "open connections, for per-connection figures")
	_ = fs.Parse(args)
	rss, err := vmRSS(*pid)
	if err != nil {
		return err
	}
	g, err := metric(*admin, "go_goroutines")
	if err != nil {
		return err
	}
	stack, _ := metric(*admin, "go_memstats_stack_inuse_bytes")
	heap, _ := metric(*admin, "go_memstats_heap_inuse_bytes")
	fmt.Printf("rss_kib %d goroutines %d stack_inuse_kib %d heap_inuse_kib %d", rss, g, stack/1024, heap/1024)
	if *conns > 0 {
		fmt.Printf(" rss_per_conn_kib %.2f goroutines_per_conn %.3f", float64(rss-*base)/float64(*conns), float64(g)/float64(*conns))
	}
	fmt.Println()
	return nil
}

func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

// metric reads one unlabelled series from edgeloop's /metrics.
func metric(admin, name string) (int64, error) {
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(rest, 64)
			return int64(f), err
		}
	}
	return 0, errors.New("no " + name + " in /metrics")
}

func runReport(files []string) error {
	var all []int64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for _, l := range strings.Fields(string(b)) {
			v, err := strconv.ParseInt(l, 10, 64)
			if err == nil {
				all = append(all, v)
			}
		}
	}
	if len(all) == 0 {
		return errors.New("report: no latencies")
	}
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[min(len(all)-1, int(p*float64(len(all))))]) / 1000 }
	fmt.Printf("received %d fanout_p50_ms %.1f fanout_p99_ms %.1f fanout_max_ms %.1f\n", len(all), q(.50), q(.99), float64(all[len(all)-1])/1000)
	return nil
}
