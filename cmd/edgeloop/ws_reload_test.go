package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWSReload: a reload keeps the WebSocket connections of the routes it
// does not change (pub/sub and proxied), and sends close 1001 with a
// reconnect hint on the routes it changes. With workers, a reload that
// changes the sockets starts new worker processes, whose predecessors send
// 1001 to all of theirs.
func TestWSReload(t *testing.T) {
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) { testWSReload(t, workers) })
	}
}

func testWSReload(t *testing.T, workers int) {
	up := newEchoUpstream(t)
	conf := func(newsQueue int, extra string) string {
		return fmt.Sprintf(`workers: %d
log: {access: false}
rate_limit: {rate: "off"}
%sroutes:
  - path: /ws/{channel}
    websocket: {}
  - path: /news/{channel}
    websocket: {send_queue: %d}
  - path: /live/
    upstream: ws://%s
    websocket: {}
`, workers, extra, newsQueue, strings.TrimPrefix(up.URL, "http://"))
	}
	cfgPath := writeFile(t, "edgeloop.yaml", conf(64, ""))
	p := start(t, "--config", cfgPath)
	pub := "http://" + p.admin + "/publish/a"

	kept := mustWS(t, p.ws("/ws/a"))
	changed := mustWS(t, p.ws("/news/a"))
	live := mustWS(t, p.ws("/live/"))
	echo := func(c *websocket.Conn, msg string) error {
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := c.ReadMessage()
		if err == nil && string(got) != msg {
			err = fmt.Errorf("echo %q, want %q", got, msg)
		}
		return err
	}
	// read expects msg next on c.
	read := func(c *websocket.Conn, msg string) error {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := c.ReadMessage()
		if err == nil && string(got) != msg {
			err = fmt.Errorf("got %q, want %q", got, msg)
		}
		return err
	}
	// publishUntil publishes msg until it reaches want subscribers; each
	// attempt that reached fewer was not delivered to the missing ones.
	publishUntil := func(msg string, want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := publish(t, pub, msg)
			if n == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %q reached %d subscribers, want %d\n%s", msg, n, want, p.logs())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	goingAway := regexp.MustCompile(`^reconnect in ([1-9]|10)s$`)
	want1001 := func(name string, c *websocket.Conn) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, msg, err := c.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway || !goingAway.MatchString(ce.Text) {
			t.Fatalf("%s: got %q, %v; want close 1001 \"reconnect in Ns\"", name, msg, err)
		}
	}

	if err := echo(live, "before"); err != nil {
		t.Fatal(err)
	}
	publishUntil("before", 2)
	for _, c := range []*websocket.Conn{kept, changed} {
		if err := read(c, "before"); err != nil {
			t.Fatal(err)
		}
	}
	first := wkWorkers(t, p.admin)

	// Reload changing /news/ only.
	os.WriteFile(cfgPath, []byte(conf(128, "")), 0o644)
	if code, out, stderr := runCLI(t, nil, "reload", "--admin", p.admin); code != 0 {
		t.Fatalf("edgeloop reload: exit %d %q %q", code, out, stderr)
	}
	want1001("/news/ subscriber (route changed)", changed)
	if n := publish(t, pub, "after"); n != 1 {
		t.Fatalf("after the reload, publish reached %d subscribers, want 1 (the kept one)", n)
	}
	if err := read(kept, "after"); err != nil {
		t.Fatalf("/ws/ subscriber across the reload: %v", err)
	}
	if err := echo(live, "after"); err != nil {
		t.Fatalf("proxied connection across the reload: %v", err)
	}
	again := mustWS(t, p.ws("/news/a"))
	publishUntil("again", 2)
	for _, c := range []*websocket.Conn{kept, again} {
		if err := read(c, "again"); err != nil {
			t.Fatal(err)
		}
	}
	st := wkWorkers(t, p.admin)
	if st.Generation <= first.Generation {
		t.Errorf("generation %d after the reload, was %d", st.Generation, first.Generation)
	}
	if workers == 1 {
		return
	}
	for i, w := range st.Workers {
		if w.PID != first.Workers[i].PID {
			t.Errorf("worker %d: pid %d after a reload in place, was %d", i, w.PID, first.Workers[i].PID)
		}
	}

	// Changing the sockets takes new worker processes: every connection
	// gets 1001 from the old ones.
	os.WriteFile(cfgPath, []byte(conf(128, "tune: {backlog: 128}\n")), 0o644)
	if code, out, stderr := runCLI(t, nil, "reload", "--admin", p.admin); code != 0 {
		t.Fatalf("edgeloop reload: exit %d %q %q", code, out, stderr)
	}
	for name, c := range map[string]*websocket.Conn{"/ws/": kept, "/news/": again, "/live/": live} {
		want1001(name+" across new worker processes", c)
	}
	next := wkWorkers(t, p.admin)
	for i, w := range next.Workers {
		if w.PID == first.Workers[i].PID {
			t.Errorf("worker %d: same pid %d after a reload that changes the sockets", i, w.PID)
		}
	}
	c := mustWS(t, p.ws("/ws/a"))
	publishUntil("new", 1)
	if err := read(c, "new"); err != nil {
		t.Fatal(err)
	}
}

// TestWSSubscribedAtHandshake: a client is subscribed once it has its 101:
// a message published right after its dial returns reaches it, every time.
func TestWSSubscribedAtHandshake(t *testing.T) {
	cfg := writeFile(t, "ws.yaml", "log: {access: false}\nrate_limit: {rate: \"off\"}\nroutes:\n  - path: /ws/{channel}\n    websocket: {}\n")
	p := start(t, "--config", cfg)
	for i := range 200 {
		ch := fmt.Sprintf("c%d", i)
		c := mustWS(t, p.ws("/ws/"+ch))
		if n := publish(t, "http://"+p.admin+"/publish/"+ch, "hello"); n != 1 {
			t.Fatalf("dial %d: publish right after the 101 reached %d subscribers, want 1", i, n)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "hello" {
			t.Fatalf("dial %d: got %q, %v", i, msg, err)
		}
		c.Close()
	}
}
