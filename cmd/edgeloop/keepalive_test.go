package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTCPKeepalive: edgeloop's client connections have no TCP keepalive
// timer unless tune.tcp_keepalive asks for one, on both transports. The
// kernel's view of the server side of a connection is read from
// /proc/net/tcp (its "tr" field is 2 while a keepalive timer runs).
func TestTCPKeepalive(t *testing.T) {
	for _, transport := range []string{"standard", "netpoll"} {
		for _, ka := range []string{"", "30s"} {
			t.Run(transport+"/"+ka, func(t *testing.T) {
				conf := "log: {access: false}\nroutes:\n  - path: /ws/{channel}\n    websocket: {}\n  - path: /\n    root: embedded\n"
				if ka != "" {
					conf += "tune: {tcp_keepalive: " + ka + "}\n"
				}
				p := start(t, "--config", writeFile(t, "edgeloop.yaml", conf), "--transport", transport)
				c, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.Contains(line, " 200 ") {
					t.Fatalf("GET /: %q %v", line, err)
				}
				want := map[string]string{"": "00", "30s": "02"}[ka]
				if tr := serverTimer(t, p.addr, c.LocalAddr().(*net.TCPAddr).Port); tr != want {
					t.Errorf("server side of an idle connection: timer %s, want %s (02 = keepalive)", tr, want)
				}
				// A WebSocket's socket is detached from hertz on a new
				// descriptor (net.FileConn, which turns keepalive on): it
				// keeps the listener's setting.
				ws := mustWS(t, p.ws("/ws/room"))
				waitOpen(t, p, "/ws/{channel}", 1)
				if tr := serverTimer(t, p.addr, ws.NetConn().LocalAddr().(*net.TCPAddr).Port); tr != want {
					t.Errorf("server side of an idle WebSocket: timer %s, want %s (02 = keepalive)", tr, want)
				}
			})
		}
	}
}

// serverTimer returns the "tr" field of /proc/net/tcp for the socket with
// local address server and remote port clientPort.
func serverTimer(t *testing.T, server string, clientPort int) string {
	t.Helper()
	_, sp, _ := net.SplitHostPort(server)
	port, _ := strconv.Atoi(sp)
	local := fmt.Sprintf("0100007F:%04X", port)
	remote := fmt.Sprintf("0100007F:%04X", clientPort)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 5 && f[1] == local && f[2] == remote {
			tr, _, _ := strings.Cut(f[5], ":")
			return tr
		}
	}
	t.Fatalf("no socket %s -> %s in /proc/net/tcp", local, remote)
	return ""
}
