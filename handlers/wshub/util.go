package wshub

import (
	"context"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// goAwayAll sends close 1001 to every connection, 32 at a time: each write
// is bounded by a one-second deadline, so one stuck client cannot hold up
// the rest.
func goAwayAll(all []*conn, hint func() string) {
	const workers = 32
	var wg sync.WaitGroup
	next := make(chan *conn)
	for range min(workers, len(all)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				c.goAway(hint())
			}
		}()
	}
	for _, c := range all {
		next <- c
	}
	close(next)
	wg.Wait()
}

// waitConns polls until count reports zero or ctx is done.
func waitConns(ctx context.Context, count func() int) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for count() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func appendInt(b []byte, n int) []byte { return strconv.AppendInt(b, int64(n), 10) }

// appendJSONString appends s as a JSON string (RFC 8259 §7).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		case r == utf8.RuneError:
			b = append(b, `\ufffd`...)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}
