// Command flood is the attacker of edgeloop's flood benchmark (bench/flood.sh):
// a TCP connect storm from a few source addresses. Each worker connects from
// its source as fast as it can and closes at once with a reset (SO_LINGER 0,
// so neither side keeps TIME_WAIT). It is bounded in time and in count, and
// refuses targets outside the loopback and private benchmark ranges.
//
//	flood -target 10.79.0.1:8080 -src 10.79.0.10,10.79.0.11 -duration 10s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(2)
	}
}

func run() error {
	target := flag.String("target", "", "host:port to flood (loopback or 10.0.0.0/8 only)")
	srcs := flag.String("src", "", "comma-separated source addresses")
	workers := flag.Int("workers", 32, "concurrent connectors per source")
	duration := flag.Duration("duration", 10*time.Second, "how long to flood (at most 2m)")
	maxConns := flag.Int64("max", 5_000_000, "stop after this many connection attempts")
	timeout := flag.Duration("timeout", 100*time.Millisecond, "connect timeout (a dropped SYN waits this long)")
	flag.Parse()

	ap, err := netip.ParseAddrPort(*target)
	if err != nil {
		return fmt.Errorf("-target: %w", err)
	}
	if a := ap.Addr(); !a.IsLoopback() && !netip.MustParsePrefix("10.0.0.0/8").Contains(a) {
		return fmt.Errorf("-target %s: only loopback or 10.0.0.0/8 (benchmark namespaces)", a)
	}
	if *duration <= 0 || *duration > 2*time.Minute {
		return errors.New("-duration: want (0, 2m]")
	}
	if *workers < 1 || *workers > 1024 {
		return errors.New("-workers: want 1..1024")
	}
	var sources []net.Addr
	for _, s := range strings.Split(*srcs, ",") {
		ip := net.ParseIP(strings.TrimSpace(s))
		if ip == nil {
			return fmt.Errorf("-src: bad address %q", s)
		}
		sources = append(sources, &net.TCPAddr{IP: ip})
	}

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var attempts, connected, timeouts, failed atomic.Int64
	var wg sync.WaitGroup
	for _, src := range sources {
		d := net.Dialer{LocalAddr: src, Timeout: *timeout}
		for range *workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && attempts.Add(1) <= *maxConns {
					c, err := d.DialContext(ctx, "tcp", *target)
					if err != nil {
						var ne net.Error
						if errors.As(err, &ne) && ne.Timeout() {
							timeouts.Add(1)
						} else if ctx.Err() == nil {
							failed.Add(1)
							time.Sleep(time.Millisecond) // refused or out of ports: do not spin
						}
						continue
					}
					connected.Add(1)
					if tc, ok := c.(*net.TCPConn); ok {
						_ = tc.SetLinger(0)
					}
					c.Close()
				}
			}()
		}
	}
	start := time.Now()
	wg.Wait()
	el := time.Since(start).Seconds()
	fmt.Printf("attempts %d connected %d timeouts %d failed %d in %.1fs (%.0f attempts/s)\n",
		min(attempts.Load(), *maxConns), connected.Load(), timeouts.Load(), failed.Load(), el,
		float64(min(attempts.Load(), *maxConns))/el)
	return nil
}
